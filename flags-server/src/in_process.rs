//! `flags serve` inside the caller's process, on the caller's tokio
//! runtime: what integration tests use to start a server without spawning
//! the binary, and to stop it without a signal.
//!
//! Not here: the server itself (`server`), which runs the same way as under
//! the binary, except that the bound address is handed back instead of
//! printed and [`Server::stop`] stands in for SIGTERM (SIGHUP still asks
//! for a reload, now of the caller's process). Nothing here installs a log
//! subscriber or a runtime; the caller owns both.

use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cli::ServeArgs;
use crate::error::Error;
use crate::server;

/// A server started by [`start_server`], serving until [`Server::stop`]
/// (or until the runtime it runs on shuts down).
pub struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    finished: JoinHandle<Result<(), Error>>,
}

/// Starts serving as `args` say (as `flags serve` would, `--addr
/// 127.0.0.1:0` picking a free port) and returns once connections are
/// accepted; a server that cannot start returns the error `flags serve`
/// would exit with.
pub async fn start_server(args: ServeArgs) -> Result<Server, Error> {
    crate::install_tls_provider();
    let (listening, bound) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let finished = tokio::spawn(server::serve_until(
        args,
        move |address| {
            let _ = listening.send(address);
        },
        async move {
            // A dropped handle stops the server as `stop` would.
            let _ = stopped.await;
            Ok(())
        },
    ));
    match bound.await {
        Ok(address) => Ok(Server {
            address,
            stop,
            finished,
        }),
        // The server ended before listening: its error says why.
        Err(_) => Err(joined(finished.await)
            .err()
            .unwrap_or_else(|| Error::Serve("the server stopped before listening".to_string()))),
    }
}

impl Server {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, drains in-flight requests (within `--drain-timeout`)
    /// and returns how serving ended.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(());
        joined(self.finished.await)
    }
}

/// The server task's outcome; a panic in it becomes an error.
fn joined(outcome: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    outcome.map_err(|e| Error::Serve(format!("the server task failed: {e}")))?
}
