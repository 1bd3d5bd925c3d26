//! Captured tracing output. The in-process connector logs through the global `tracing`
//! subscriber; [`install`] makes that subscriber write into a buffer (and to stderr when
//! `TEST_LOG` is set) so scenario D04 can grep every log line the run produced.

use std::{
    io::Write,
    sync::{LazyLock, Mutex},
};

use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

static BUFFER: LazyLock<Mutex<Vec<u8>>> = LazyLock::new(|| Mutex::new(Vec::new()));
static INSTALLED: LazyLock<bool> = LazyLock::new(|| {
    // Everything at debug, except rmcp's own message dumps (it logs whole JSON-RPC
    // responses at debug): the connector ships with `info`, where rmcp prints no bodies.
    let filter = EnvFilter::try_from_env("TEST_LOG_FILTER")
        .unwrap_or_else(|_| EnvFilter::new("debug,rmcp=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Capture)
        .with_ansi(false)
        .try_init()
        .is_ok()
});

/// Installs the capturing subscriber once per process; true if it is the global one.
pub fn install() -> bool {
    *INSTALLED
}

/// Everything logged so far in this process.
pub fn captured() -> String {
    let buffer = BUFFER.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&buffer).into_owned()
}

#[derive(Clone, Copy)]
struct Capture;

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        BUFFER.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter
    }
}
