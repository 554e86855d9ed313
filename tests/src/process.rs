//! Child processes that cannot outlive the test process.
//!
//! [`spawn_guarded`] starts a child with `PR_SET_PDEATHSIG = SIGKILL`, so the
//! kernel kills it when the test process dies, however it dies: a normal exit,
//! a panic, a harness timeout, `kill -9` of the test binary. The death signal
//! fires when the *thread* that forked the child exits, and test threads come
//! and go, so every guarded child is forked by one spawner thread that lives as
//! long as the process. Linux only (as is weir's test set-up).

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

type Request = (Command, Sender<io::Result<Child>>);

/// Spawns `command` so that it is killed (SIGKILL) when the test process exits
/// or dies. Use [`Guarded`] to also kill it when a test ends early.
pub fn spawn_guarded(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("weir-tests-spawner".into())
            .spawn(move || {
                // Never returns while the process lives: the channel's sender is in a static.
                for (mut command, reply) in rx {
                    let _ = reply.send(spawn_with_death_signal(&mut command));
                }
            })
            .expect("starting the spawner thread");
        tx
    });
    let (tx, rx) = channel();
    spawner.send((command, tx)).map_err(|_| io::Error::other("spawner thread is gone"))?;
    rx.recv().map_err(|_| io::Error::other("spawner thread is gone"))?
}

fn spawn_with_death_signal(command: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before prctl took effect: nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command.spawn()
}

/// A guarded child that is killed (SIGKILL) and reaped when dropped.
pub struct Guarded {
    child: Child,
}

impl Guarded {
    /// Spawns `command` with [`spawn_guarded`].
    pub fn spawn(command: Command) -> io::Result<Guarded> {
        spawn_guarded(command).map(|child| Guarded { child })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child; its pid is not reused before we reap it.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the child with SIGKILL and reaps it. Idempotent.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}
