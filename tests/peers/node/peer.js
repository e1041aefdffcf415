// Google's Node client against the gcptoken emulator, one flow per command; prints JSON results.
// Usage: node peer.js COMMAND INPUT.json  (the emulator's URL and the flow's inputs are in the file)
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const {
  ExternalAccountClient, GoogleAuth, Impersonated, JWT, JWTAccess, OAuth2Client, UserRefreshClient,
} = require('google-auth-library');
const {transporter} = require('./redirect');

const claimsOf = token => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
const kidOf = token => JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString()).kid;

const flows = {
  async key({emulator, key, audience}) {
    const client = new JWT({email: key.client_email, key: key.private_key, keyId: key.private_key_id,
      scopes: ['https://www.googleapis.com/auth/cloud-platform'], transporter: transporter(emulator)});
    const access = await client.getAccessToken();
    const idClient = new JWT({email: key.client_email, key: key.private_key, transporter: transporter(emulator)});
    const idToken = await idClient.fetchIdToken(audience);
    return {access: access.token, idClaims: claimsOf(idToken)};
  },

  async vm({audience}) {  // GCE_METADATA_HOST and GCE_METADATA_IP point at the emulator
    const auth = new GoogleAuth();
    const idClient = await auth.getIdTokenClient(audience);
    const headers = await idClient.getRequestHeaders();
    const idToken = headers.get('authorization').replace(/^Bearer /, '');
    return {idClaims: claimsOf(idToken), access: await auth.getAccessToken(), projectId: await auth.getProjectId(),
      env: await auth.getEnv()};  // the platform as Node detects it (variables, then the metadata server)
  },

  async verify({emulator, token, audience, rotateUrl, mintUrl}) {
    const client = new OAuth2Client({endpoints: {
      oauth2FederatedSignonPemCertsUrl: `${emulator}/oauth2/v1/certs`}});
    const first = (await client.verifyIdToken({idToken: token, audience})).getPayload();
    const result = {first: first.sub, firstKid: kidOf(token)};
    if (rotateUrl) {  // a rotation as Google does it: published first, signing after the max-age
      const rotated = await (await fetch(rotateUrl, {
        method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}'})).json();
      await new Promise(resolve => setTimeout(resolve, (rotated.switchAt * 1000 - Date.now()) + 500));
      const next = (await (await fetch(mintUrl, {headers: {'Metadata-Flavor': 'Google'}})).text());
      result.secondKid = kidOf(next);
      result.second = (await client.verifyIdToken({idToken: next, audience})).getPayload().sub;
      result.firstAgain = (await client.verifyIdToken({idToken: token, audience})).getPayload().sub;
    }
    try {
      await client.verifyIdToken({idToken: token, audience: 'https://someone-else.example'});
      result.wrongAudience = 'accepted';
    } catch (e) {
      result.wrongAudience = 'refused';
    }
    return result;
  },

  async tokeninfo({emulator, accessToken}) {
    const client = new OAuth2Client({endpoints: {tokenInfoUrl: `${emulator}/tokeninfo`}});
    return await client.getTokenInfo(accessToken);
  },

  async impersonated({emulator, key, target, delegates, audience}) {
    const source = new JWT({email: key.client_email, key: key.private_key,
      scopes: ['https://www.googleapis.com/auth/cloud-platform'], transporter: transporter(emulator)});
    const client = new Impersonated({sourceClient: source, targetPrincipal: target, delegates,
      lifetime: 1800, targetScopes: ['https://www.googleapis.com/auth/cloud-platform'],
      transporter: transporter(emulator)});
    const access = await client.getAccessToken();
    const idToken = await client.fetchIdToken(audience, {includeEmail: true});
    const signed = await client.sign('hello from node');
    return {access: access.token, idToken, signed};
  },

  async user({emulator, user}) {
    const client = new UserRefreshClient({clientId: user.client_id, clientSecret: user.client_secret,
      refreshToken: user.refresh_token, endpoints: {oauth2TokenUrl: `${emulator}/token`}});
    const access = await client.getAccessToken();
    return {access: access.token, idClaims: claimsOf(client.credentials.id_token)};
  },

  async external({emulator, file}) {
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const client = ExternalAccountClient.fromJSON({...json, transporter: transporter(emulator)});
    const access = await client.getAccessToken();
    return {access: access.token, projectId: await client.getProjectId()};
  },

  async anyFile({file}) {  // any credential file, as GoogleAuth reads it (every URL in it is the emulator's)
    const client = new GoogleAuth().fromJSON(JSON.parse(fs.readFileSync(file, 'utf8')));
    const access = await client.getAccessToken();
    return {access: access.token, kind: client.constructor.name};
  },

  async seed({emulator, key, audience}) {  // no library: a jwt-bearer assertion with Node's own crypto
    const now = Math.floor(Date.now() / 1000);
    const part = value => Buffer.from(JSON.stringify(value)).toString('base64url');
    const input = `${part({alg: 'RS256', typ: 'JWT', kid: key.private_key_id})}.${part({
      iss: key.client_email, aud: 'https://oauth2.googleapis.com/token', iat: now, exp: now + 3600,
      target_audience: audience})}`;
    const signature = crypto.sign('RSA-SHA256', Buffer.from(input), key.private_key).toString('base64url');
    const response = await fetch(`${emulator}/token`, {method: 'POST',
      headers: {'Content-Type': 'application/x-www-form-urlencoded'},
      body: new URLSearchParams({grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: `${input}.${signature}`})});
    const body = await response.json();
    return {status: response.status, idClaims: claimsOf(body.id_token)};
  },

  // A self-signed JWT (JWTAccess) and an IAM signJwt result, checked as Node's client checks them,
  // against certificates fetched from the key file's client_x509_cert_url (the emulator's).
  async accountKeys({key, audience, signed}) {
    const access = new JWTAccess(key.client_email, key.private_key, key.private_key_id);
    const token = access.getRequestHeaders(audience).get('authorization').replace(/^Bearer /, '');
    const client = new OAuth2Client();
    const check = async (jwt, certsUrl, email, aud) => {
      const certs = await (await fetch(certsUrl)).json();
      try {
        return (await client.verifySignedJwtWithCertsAsync(jwt, certs, aud, [email])).getPayload().sub;
      } catch (e) {
        return `refused: ${e.message}`;
      }
    };
    return {
      selfSigned: await check(token, key.client_x509_cert_url, key.client_email, audience),
      wrongAudience: await check(token, key.client_x509_cert_url, key.client_email, 'https://someone-else.example'),
      signJwt: await check(signed.token, signed.certsUrl, signed.email, audience),
      signJwtWithOtherKeys: await check(signed.token, key.client_x509_cert_url, signed.email, audience),
    };
  },
};

async function main() {
  const [command, input] = process.argv.slice(2);
  const result = await flows[command](JSON.parse(fs.readFileSync(input, 'utf8')));
  process.stdout.write(JSON.stringify(result));
}

main().catch(error => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
