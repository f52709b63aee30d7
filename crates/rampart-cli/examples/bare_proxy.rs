//! The floor under Rampart's plain-proxy figures: hyper's HTTP/1 server and client on tokio's
//! one-thread runtime, with mimalloc, and nothing else: no routing, policy, header rewriting,
//! audit or metrics. What it costs per request is what any gateway built on these crates pays
//! before doing any work of its own (docs/benchmarks.md, "Issue 10, eleventh round"); `bench/run`
//! measures it beside Rampart and its peers as the `hyper-floor` contender (`BENCH_FLOOR_BIN`).
//!
//! Usage: `bare_proxy LISTEN UPSTREAM`, both `IP:PORT`. A measuring stick, not a gateway: it
//! forwards whatever it is sent.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use hyper::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn Error + Send + Sync>;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |arg: Option<String>| arg.and_then(|a| a.parse::<SocketAddr>().ok());
    let (Some(listen), Some(upstream)) = (parse(args.next()), parse(args.next())) else {
        eprintln!("usage: bare_proxy LISTEN UPSTREAM (each IP:PORT)");
        return ExitCode::from(2);
    };
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| runtime.block_on(serve(listen, upstream)));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare_proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = connection(stream, upstream).await {
                eprintln!("bare_proxy: connection: {e}");
            }
        });
    }
}

/// One client connection and its own keep-alive upstream connection, both driven by this task
/// (as Rampart drives the upstream exchange in the request's task): a client that waits for each
/// answer, as wrk's and oha's do, never needs a second one.
async fn connection(stream: TcpStream, upstream: SocketAddr) -> Result<(), BoxError> {
    stream.set_nodelay(true)?;
    let up = TcpStream::connect(upstream).await?;
    up.set_nodelay(true)?;
    let (sender, upstream_conn) = client::handshake(TokioIo::new(up)).await?;
    // The request future does not borrow the sender, so the lock is held only to start it.
    // `send_request` without `ready()`: hyper's client takes the next request once the previous
    // response has ended, which a client that waits for each answer (wrk, oha) guarantees here;
    // a pipelining client would get errors, which a measuring stick need not handle.
    let sender = Arc::new(Mutex::new(sender));
    // An upstream failure is returned to hyper, which closes the client connection: a measuring
    // stick needs no 502 page.
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let sent = sender
            .lock()
            .map(|mut s| s.send_request(req))
            .map_err(|_poisoned| ());
        async move {
            match sent {
                Ok(response) => response.await.map_err(std::io::Error::other),
                Err(()) => Err(std::io::Error::other("upstream sender lock poisoned")),
            }
        }
    });
    let served = server::Builder::new().serve_connection(TokioIo::new(stream), service);
    // The server's end drops the service and its sender, which ends the upstream connection.
    let (served, upstream_done) = tokio::join!(served, upstream_conn);
    served?;
    upstream_done?;
    Ok(())
}
