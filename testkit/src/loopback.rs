//! A loopback TCP server on its own thread and current-thread runtime: it hands every accepted
//! connection to a task and stops when dropped (dropping the runtime ends every connection task).
//! The hostile servers and the TLS front are both built on it; [`Background`] (a future on its
//! own thread until dropped) also runs the canned stand-in.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};

use tokio::net::{TcpListener, TcpStream};

/// A running accept loop; dropping it stops the loop and joins its thread.
pub struct Loopback {
    pub addr: SocketAddr,
    _thread: Background,
}

impl Loopback {
    /// Bind `bind` (port 0 for any free port) and spawn `on_accept(sock)` for every connection.
    pub fn serve<F, Fut>(bind: impl ToSocketAddrs, mut on_accept: F) -> Loopback
    where
        F: FnMut(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let std_listener = std::net::TcpListener::bind(bind).expect("bind");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let thread = Background::run(move || async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(on_accept(sock));
            }
        });
        Loopback {
            addr,
            _thread: thread,
        }
    }
}

/// A future run on its own thread's current-thread runtime until dropped: dropping it stops the
/// future (and with the runtime every task it spawned) and joins the thread.
pub struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Run `work()` (made on the new thread, so it may hold what is not `Send`) until dropped.
    pub fn run<F, Fut>(work: F) -> Background
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::select! {
                    _ = work() => {}
                    _ = rx => {}
                }
            });
        });
        Background {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
