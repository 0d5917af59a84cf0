//! paperclipctl's integration tests: one binary, one module per area.

mod backup;
mod cli;
mod guided;
mod harness;
mod install;
mod journey;
mod output;
mod ownership;
mod preflight;
mod profile_errors;
mod records;
mod registry_login;
mod render;
mod restore;
mod restore_empty;
mod secrets;
mod shell_image;
mod shell_inventory;
mod sidecar;
mod smoke;
mod ssh;
mod status;
mod transaction;
mod uninstall;
mod upgrade;
mod upstream_dumps;
