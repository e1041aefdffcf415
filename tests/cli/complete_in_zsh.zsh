# zsh -f complete_in_zsh.zsh FPATH_DIR OUT LINE...
# Completes each LINE as a user pressing Tab would: an interactive zsh on a pseudo-terminal (zpty),
# the completion system loaded (compinit) with FPATH_DIR first in $fpath. compadd is wrapped to
# write the candidates it is given that match the word under the cursor to OUT, between markers:
#   @@line LINE / candidates, one a line / @@done
zmodload zsh/zpty || exit 3
local dir=$1 out=$2 init=$2.init chunk
shift 2
: >$out
cat >$init <<INIT
PS1='' RPS1=''
unsetopt auto_list auto_menu list_beep beep
fpath=(${(q)dir} \$fpath)
autoload -Uz compinit && compinit -u -D
compadd() {
  # Calls that only ask which words match (-O, -A, -D) add nothing: passed through.
  if (( \${@[(I)-[OAD]]} )); then builtin compadd "\$@"; return; fi
  local -a __found
  builtin compadd -O __found "\$@"
  (( \$#__found )) && print -rl -- \$__found >>${(q)out}
  builtin compadd "\$@"
}
_capture() {
  print -r -- "@@line \$BUFFER" >>${(q)out}
  zle complete-word
  print -r -- "@@done" >>${(q)out}
  BUFFER=''
}
zle -N _capture
bindkey '^I' _capture
print -r -- "@@ready" >>${(q)out}
INIT
zpty shell zsh -f -i || exit 3
zpty -w shell "source ${(q)init}"

wait_for() {  # COUNT: polls until OUT holds COUNT markers (the pty's output is read and dropped)
  local i
  local -a markers
  for i in {1..1000}; do
    while zpty -r -t shell chunk; do :; done
    markers=(${(M)${(f)"$(<$out)"}:#@@(ready|done)})
    (( $#markers >= $1 )) && return 0
    sleep 0.02
  done
  print -u2 "zsh: no completion after marker $1"
  exit 4
}

wait_for 1
integer count=1
for line in "$@"; do
  zpty -w -n shell "$line"$'\t'
  wait_for $(( ++count ))
done
zpty -d shell
