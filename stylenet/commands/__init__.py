"""The `stylenet` command's arguments and each subcommand's handler; `stylenet.cli.main` picks the one to run."""
