//! The shell sidecar image: its boot-time inventory reconciler (run for real against stand-in
//! managers) and `paperclipctl image build|push` against the harness's Docker API and registry.

pub(crate) mod image;
mod reconciler;
