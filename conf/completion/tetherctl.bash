# bash completion for tetherctl: verbs, their options, and the names the daemon knows (ports,
# uplinks, sessions) asked from it when it answers.

_tetherctl_names() {  # _tetherctl_names VERB KEY: a list's names, from tetherctl --json VERB
  tetherctl "${_tetherctl_socket[@]}" --json "$1" 2>/dev/null |
    grep -o "\"$2\": *\"[^\"]*\"" | sed 's/.*: *"\(.*\)"/\1/' | sort -u
}

_tetherctl() {
  local cur prev verb i
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD-1]}
  local verbs="status flows ports counters init stop set-upstream uplinks add-uplink update-uplink
    remove-uplink sessions set-session remove-session clients session-stats emergency
    set-interface-enabled shutdown-prepare shutdown-cancel vehicle vehicle-in-use garage
    suspend resume
    add-downstream remove-downstream set-local-prefixes stats set-limit events reload
    apply-signed-config restore-config"
  _tetherctl_socket=()
  verb=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -s|--socket) _tetherctl_socket=(-s "${COMP_WORDS[i+1]}"); ((i++)) ;;
      --json) ;;
      *) [ -z "$verb" ] && verb=${COMP_WORDS[i]} ;;
    esac
  done

  case $prev in
    -s|--socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --kind) COMPREPLY=($(compgen -W "cellular wifi ethernet usb bluetooth" -- "$cur")); return ;;
    --roaming)
      if [ "$verb" = set-session ]; then
        COMPREPLY=($(compgen -W "forbidden national international always" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "home national international" -- "$cur"))
      fi
      return ;;
    --track-method) COMPREPLY=($(compgen -W "ping arp" -- "$cur")); return ;;
    --connection) COMPREPLY=($(compgen -W "internet local" -- "$cur")); return ;;
    --existing-flows) COMPREPLY=($(compgen -W "reset keep" -- "$cur")); return ;;
    --uplink) COMPREPLY=($(compgen -W "$(_tetherctl_names uplinks name) cellular wifi ethernet usb bluetooth" -- "$cur")); return ;;
    --downstream|--iface) COMPREPLY=($(compgen -W "$(_tetherctl_names ports name)" -- "$cur")); return ;;
  esac

  if [ -z "$verb" ]; then
    COMPREPLY=($(compgen -W "-s --socket --json -h --help $verbs" -- "$cur"))
    return
  fi
  case $verb in
    set-upstream)
      COMPREPLY=($(compgen -W "--ipv4-addr --ipv4-gateway --ipv6-gateway $(_tetherctl_names ports name)" -- "$cur")) ;;
    add-uplink|update-uplink)
      COMPREPLY=($(compgen -W "--iface --kind --metered --unmetered --roaming --metric --weight
        --ipv4-addr --ipv4-gateway --ipv6-gateway --ipv6-prefix --track --track-interval-ms
        --track-method $([ "$verb" = update-uplink ] && _tetherctl_names uplinks name)" -- "$cur")) ;;
    remove-uplink) COMPREPLY=($(compgen -W "$(_tetherctl_names uplinks name)" -- "$cur")) ;;
    set-session)
      COMPREPLY=($(compgen -W "--mac --address --downstream --uid --gid --cgroup --uplink
        --connection --priority --roaming --existing-flows --warning --limit
        $(_tetherctl_names sessions name)" -- "$cur")) ;;
    remove-session) COMPREPLY=($(compgen -W "$(_tetherctl_names sessions name)" -- "$cur")) ;;
    emergency)
      if [ "$prev" = emergency ]; then
        COMPREPLY=($(compgen -W "$(_tetherctl_names sessions name)" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "on off" -- "$cur"))
      fi ;;
    set-interface-enabled)
      if [ "$prev" = "$verb" ]; then
        COMPREPLY=($(compgen -W "$(_tetherctl_names ports name)" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "true false" -- "$cur"))
      fi ;;
    add-downstream|remove-downstream|stats|set-limit)
      [ "$prev" = "$verb" ] && COMPREPLY=($(compgen -W "$(_tetherctl_names ports name)" -- "$cur")) ;;
    vehicle-in-use) [ "$prev" = "$verb" ] && COMPREPLY=($(compgen -W "true false" -- "$cur")) ;;
    garage) [ "$prev" = "$verb" ] && COMPREPLY=($(compgen -W "on off" -- "$cur")) ;;
    events) COMPREPLY=($(compgen -W "--count" -- "$cur")) ;;
    apply-signed-config) [ "$prev" = "$verb" ] && COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
}
complete -F _tetherctl tetherctl
