// A transporter for google-auth-library that sends Google's hosts to the emulator and refuses
// anything else that is not loopback: a peer test must never leave this machine.
'use strict';
const {Gaxios} = require('gaxios');

const GOOGLE = /^https:\/\/([a-z0-9-]+\.)*(googleapis\.com|google\.com|gstatic\.com)(?=\/|$)/;
const LOOPBACK = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d+)?\//;

function toEmulator(url, emulator) {
  const rewritten = url.replace(GOOGLE, emulator);
  if (!LOOPBACK.test(rewritten)) throw new Error(`refusing to leave this machine: ${url}`);
  return rewritten;
}

function transporter(emulator) {
  const gaxios = new Gaxios();
  gaxios.interceptors.request.add({
    resolved: async config => {
      config.url = new URL(toEmulator(String(config.url), emulator));
      return config;
    },
  });
  return gaxios;
}

module.exports = {transporter, toEmulator};
