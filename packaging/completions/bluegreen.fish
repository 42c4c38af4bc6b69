# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_bluegreen_global_optspecs
    string join \n config= h/help V/version
end

function __fish_bluegreen_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_bluegreen_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_bluegreen_using_subcommand
    set -l cmd (__fish_bluegreen_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c bluegreen -n "__fish_bluegreen_needs_command" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -s V -l version -d 'Print version'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "up" -d 'Run the whole system in the foreground without systemd: both slots, NGINX, and the trainer that retrains and deploys when data arrives. Ctrl-C stops it all'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "init" -d 'Create the state folder: data, the initial model, slot links, the NGINX include. Safe to run again; it only adds what is missing'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "serve" -d 'Serve one slot\'s model over HTTP (what `bluegreen@<slot>.service` runs)'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "train" -d 'Train a model on the data and store it as a new artifact'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "add-data" -d 'Append validated rows to the training data'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "predict" -d 'Predict locally from a model artifact, without a server: one prediction a line'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "deploy" -d 'Deploy a model to the resting slot and move traffic to it'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "rollback" -d 'Move traffic back to the resting slot, which still serves the previous model'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "promote" -d 'Run the rest of the rollout of the candidate that waits on the resting slot (rollout.promote = "manual"): shadow, canary steps, the switch, the watch'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "abort" -d 'Drop the candidate that waits on the resting slot; the slot goes back to the model it served before, so `bluegreen rollback` still means the previous model'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "restart" -d 'Apply a configuration change: check it, then restart the slots one at a time, the resting one first, each until it sent READY=1 and answers a probe. Nothing is restarted when a check fails'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "status" -d 'Show the slots, their models and health, the data, and the last deploys'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "nginx-site" -d 'Print the NGINX site configuration for this config'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "check" -d 'Check the configuration, the state and NGINX\'s configuration, like `nginx -t`; when all pass, save the configuration as the last good one (slots fall back to it)'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "export" -d 'Write a model to standard output as an export file, for `bluegreen import` on another host: `bluegreen export VERSION > FILE`'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "import" -d 'Add a model exported on another host, keeping its version name. The file\'s format, checksum, artifact and schema (this host\'s [data] features and label) are checked first; nothing is written unless all are sound'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "systemd-generator" -d 'Write the slots\' socket units\' addresses from the config: what systemd runs as bluegreen\'s generator at boot and at every `systemctl daemon-reload`'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "generate" -d 'Write the man pages or the shell completions, generated from this command line: what the Debian package ships (packaging/man/, packaging/completions/)'
complete -c bluegreen -n "__fish_bluegreen_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand up" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand up" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand init" -l data -d 'The first training data, when there is none yet: a CSV of the columns [data] names (with a header in any order and case, or none). Without it, the Boston demo\'s rows are the first data when [data] is the default' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand init" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand init" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand serve" -l slot -d 'Which slot to serve' -r -f -a "blue\t''
green\t''"
complete -c bluegreen -n "__fish_bluegreen_using_subcommand serve" -l listen -d 'Listen here instead of the slot\'s configured address (for tests; port 0 picks one)' -r
complete -c bluegreen -n "__fish_bluegreen_using_subcommand serve" -l listen-fd -d 'Accept on this inherited listening socket (a file descriptor number), bound by the supervisor on the slot\'s address: how `bluegreen up` keeps the socket open across restarts. (Under systemd the socket comes from `bluegreen@.socket` instead.)' -r
complete -c bluegreen -n "__fish_bluegreen_using_subcommand serve" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand serve" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand train" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand train" -l if-due -d 'Train only when the rows added since the newest model reach `batch_size`'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand train" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand add-data" -l row -d 'One row of comma-separated numbers: the [data] features, then the label (for the Boston default: CRIM,...,LSTAT,MEDV). May be repeated' -r
complete -c bluegreen -n "__fish_bluegreen_using_subcommand add-data" -l sample -d 'Append N of the original demo\'s example rows (it had two; they repeat). Only for the Boston default [data]' -r
complete -c bluegreen -n "__fish_bluegreen_using_subcommand add-data" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand add-data" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand predict" -l model -d 'The model: a version (a unique prefix such as v0003 will do) or an artifact\'s path [default: the model the active slot serves, else the newest]' -r
complete -c bluegreen -n "__fish_bluegreen_using_subcommand predict" -l row -d 'One row of the model\'s features, comma-separated. May be repeated' -r
complete -c bluegreen -n "__fish_bluegreen_using_subcommand predict" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand predict" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand deploy" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand deploy" -l no-wait -d 'Fail at once if another deploy is running, instead of waiting for it'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand deploy" -l allow-schema-change -d 'Deploy a model whose features or label differ from the active model\'s: this changes what clients must send. The history records the change'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand deploy" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand rollback" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand rollback" -l no-wait -d 'Fail at once if a deploy is running, instead of waiting for it'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand rollback" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand promote" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand promote" -l no-wait -d 'Fail at once if a deploy is running, instead of waiting for it'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand promote" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand abort" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand abort" -l no-wait -d 'Fail at once if a deploy is running, instead of waiting for it'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand abort" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand restart" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand restart" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand status" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand status" -l json -d 'Print JSON for scripts instead of the table'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand status" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand nginx-site" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand nginx-site" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand check" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand check" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand export" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand export" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand import" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand import" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand systemd-generator" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand systemd-generator" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "man" -d 'bluegreen.1, and bluegreen-COMMAND.1 for each command'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "completions" -d 'bluegreen.bash, _bluegreen (zsh) and bluegreen.fish'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and __fish_seen_subcommand_from man" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and __fish_seen_subcommand_from completions" -l config -d 'Config file [default: ./bluegreen.toml, else /etc/bluegreen/config.toml, else built-in defaults]' -r -F
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "man" -d 'bluegreen.1, and bluegreen-COMMAND.1 for each command'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'bluegreen.bash, _bluegreen (zsh) and bluegreen.fish'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "up" -d 'Run the whole system in the foreground without systemd: both slots, NGINX, and the trainer that retrains and deploys when data arrives. Ctrl-C stops it all'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "init" -d 'Create the state folder: data, the initial model, slot links, the NGINX include. Safe to run again; it only adds what is missing'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "serve" -d 'Serve one slot\'s model over HTTP (what `bluegreen@<slot>.service` runs)'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "train" -d 'Train a model on the data and store it as a new artifact'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "add-data" -d 'Append validated rows to the training data'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "predict" -d 'Predict locally from a model artifact, without a server: one prediction a line'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "deploy" -d 'Deploy a model to the resting slot and move traffic to it'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "rollback" -d 'Move traffic back to the resting slot, which still serves the previous model'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "promote" -d 'Run the rest of the rollout of the candidate that waits on the resting slot (rollout.promote = "manual"): shadow, canary steps, the switch, the watch'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "abort" -d 'Drop the candidate that waits on the resting slot; the slot goes back to the model it served before, so `bluegreen rollback` still means the previous model'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "restart" -d 'Apply a configuration change: check it, then restart the slots one at a time, the resting one first, each until it sent READY=1 and answers a probe. Nothing is restarted when a check fails'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "status" -d 'Show the slots, their models and health, the data, and the last deploys'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "nginx-site" -d 'Print the NGINX site configuration for this config'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "check" -d 'Check the configuration, the state and NGINX\'s configuration, like `nginx -t`; when all pass, save the configuration as the last good one (slots fall back to it)'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "export" -d 'Write a model to standard output as an export file, for `bluegreen import` on another host: `bluegreen export VERSION > FILE`'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "import" -d 'Add a model exported on another host, keeping its version name. The file\'s format, checksum, artifact and schema (this host\'s [data] features and label) are checked first; nothing is written unless all are sound'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "systemd-generator" -d 'Write the slots\' socket units\' addresses from the config: what systemd runs as bluegreen\'s generator at boot and at every `systemctl daemon-reload`'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "generate" -d 'Write the man pages or the shell completions, generated from this command line: what the Debian package ships (packaging/man/, packaging/completions/)'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and not __fish_seen_subcommand_from up init serve train add-data predict deploy rollback promote abort restart status nginx-site check export import systemd-generator generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "man" -d 'bluegreen.1, and bluegreen-COMMAND.1 for each command'
complete -c bluegreen -n "__fish_bluegreen_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'bluegreen.bash, _bluegreen (zsh) and bluegreen.fish'
