//! The command line: the clap definition (`args`), one function per subcommand
//! (`commands`), logging setup, and the generated man page.
pub mod args;
pub mod commands;
pub mod logging;
pub mod manpage;
