//! Zero-copy relay of a long response body: `splice(2)` moves the bytes from the
//! replica's socket into a kernel pipe and from the pipe into the client's socket,
//! so they never pass through user space (what HAProxy's `option splice-response`
//! does). Linux only, like the daemon; used for `Content-Length` bodies of at least
//! [`SPLICE_AT_LEAST`] bytes, where it saves a copy per byte on each side.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bodies at least this long (bytes, after what came with the head) are spliced.
pub const SPLICE_AT_LEAST: u64 = 256 * 1024;

/// Bytes a pipe is asked to hold (the kernel may grant less).
const PIPE_BYTES: usize = 1 << 20;

/// Empty pipes a worker thread keeps for its next spliced body (at most this many).
const SPARE_PIPES: usize = 8;

thread_local! {
    /// This worker's empty pipes: creating a pipe and growing it to [`PIPE_BYTES`]
    /// costs three syscalls per response; a worker is one thread, so its pipes
    /// need no lock.
    static SPARE: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// A kernel pipe and the bytes in it.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let capacity = fcntl_setpipe_size(&write, PIPE_BYTES).unwrap_or(64 * 1024);
        Ok(Self {
            read,
            write,
            held: 0,
            capacity,
        })
    }

    /// An empty pipe: one this thread kept, or a new one.
    fn take() -> io::Result<Self> {
        match SPARE.with(|spare| spare.borrow_mut().pop()) {
            Some(pipe) => Ok(pipe),
            None => Self::new(),
        }
    }

    /// Keeps this pipe for the next body if it is empty (a pipe that still
    /// holds bytes after an error is closed instead).
    fn give_back(self) {
        if self.held == 0 {
            SPARE.with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.len() < SPARE_PIPES {
                    spare.push(self);
                }
            });
        }
    }
}

/// Moves exactly `len` bytes from `upstream` to `client`.
///
/// # Errors
/// The socket's or pipe's error; `UnexpectedEof` when the replica closes early.
pub async fn relay(upstream: &TcpStream, client: &TcpStream, len: u64) -> io::Result<()> {
    let mut pipe = Pipe::take()?;
    let moved = move_through(&mut pipe, upstream, client, len).await;
    pipe.give_back();
    moved
}

/// Moves exactly `len` bytes from `upstream` through `pipe` to `client`.
async fn move_through(
    pipe: &mut Pipe,
    upstream: &TcpStream,
    client: &TcpStream,
    len: u64,
) -> io::Result<()> {
    let mut left = len;
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    while left > 0 || pipe.held > 0 {
        if left > 0 && pipe.held < pipe.capacity {
            let room = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(pipe.capacity - pipe.held);
            let moved = upstream
                .async_io(Interest::READABLE, || {
                    Ok(splice(upstream, None, &pipe.write, None, room, flags)?)
                })
                .await?;
            if moved == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= moved as u64;
            pipe.held += moved;
        }
        while pipe.held > 0 {
            let moved = client
                .async_io(Interest::WRITABLE, || {
                    Ok(splice(&pipe.read, None, client, None, pipe.held, flags)?)
                })
                .await?;
            pipe.held -= moved;
            if left > 0 && moved > 0 {
                break; // refill while the client drains
            }
        }
    }
    Ok(())
}
