//! Smoke tests that prove each harness component is real and reachable.

mod cluster;
mod infisical;
mod node;
mod services;
