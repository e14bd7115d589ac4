//! A TCP relay in front of the test cluster that a test can take down and
//! bring back on the same port: the database going away and returning,
//! without stopping a cluster other tests use. Not here: the tests.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A relay from a local port to `target`.
pub struct Relay {
    target: SocketAddr,
    /// The port it listens on, the same across restarts.
    pub port: u16,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    accepting: JoinHandle<()>,
}

impl Relay {
    /// Relays a new local port to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut relay = Self {
            target,
            port,
            running: None,
        };
        relay.listen(listener);
        relay
    }

    /// Stops accepting and cuts every relayed connection: the database is gone.
    pub fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        running.accepting.join().unwrap();
        for stream in running.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port: the database is back.
    pub fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.listen(listener);
    }

    fn listen(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let (stopping, kept, target) = (stop.clone(), streams.clone(), self.target);
        let accepting = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                relay(client.unwrap(), target, &kept);
            }
        });
        self.running = Some(Running {
            stop,
            streams,
            accepting,
        });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies bytes both ways between `client` and a new connection to `target`.
fn relay(client: TcpStream, target: SocketAddr, streams: &Mutex<Vec<TcpStream>>) {
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    let mut streams = streams.lock().unwrap();
    streams.push(client.try_clone().unwrap());
    streams.push(server.try_clone().unwrap());
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}
