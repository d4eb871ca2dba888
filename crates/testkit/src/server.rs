//! The background HTTP server the contract fakes run on: an actix-web server on its own
//! thread and actix system, bound before `start` returns, stopped and joined when dropped.

use std::io;
use std::net::TcpListener;
use std::thread::JoinHandle;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer};

pub struct FakeServer {
    port: u16,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds `port` of 127.0.0.1 (0: a free one), for a fake that must know its address
    /// before it serves (its discovery document names it).
    pub fn bind(port: u16) -> io::Result<TcpListener> {
        TcpListener::bind(("127.0.0.1", port))
    }

    /// Serves the app `factory` builds on `listener`. `name` names the thread and the error
    /// when the server cannot start.
    pub fn start<F, T, B>(name: &str, listener: TcpListener, factory: F) -> io::Result<Self>
    where
        F: Fn() -> App<T> + Send + Clone + 'static,
        T: ServiceFactory<
                ServiceRequest,
                Config = (),
                Response = ServiceResponse<B>,
                Error = actix_web::Error,
                InitError = (),
            > + 'static,
        B: MessageBody + 'static,
    {
        let port = listener.local_addr()?.port();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 8);
        let (tx, rx) = std::sync::mpsc::channel::<io::Result<ServerHandle>>();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-{port}"))
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(factory)
                        .workers(workers)
                        .disable_signals()
                        .shutdown_timeout(1)
                        .listen(listener);
                    match server {
                        Ok(server) => {
                            let server = server.run();
                            let _ = tx.send(Ok(server.handle()));
                            let _ = server.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })?;
        let handle = match rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other(format!("the {name} server thread ended")));
            }
        };
        Ok(Self {
            port,
            handle,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; the returned future only waits.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
