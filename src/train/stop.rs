//! SIGTERM and SIGINT while training mean "checkpoint, then stop": Slurm sends
//! SIGTERM on preemption, `scancel` and (through the batch script) near a time
//! limit, and the next attempt resumes from that checkpoint. Outside training,
//! and on a second signal during it, the default action (terminate) applies.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Training loops running now (a process trains one model at a time; tests may run several).
static TRAINING: AtomicUsize = AtomicUsize::new(0);
/// A stop was asked for and not yet honoured.
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The signal that asked (for the log line).
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Installs the handlers once per process. Everything they touch is an atomic
/// or async-signal-safe (signal-hook's default-action emulation).
fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        for sig in [SIGTERM, SIGINT] {
            let action = move || {
                if TRAINING.load(Ordering::SeqCst) == 0 || REQUESTED.swap(true, Ordering::SeqCst) {
                    let _ = signal_hook::low_level::emulate_default_handler(sig);
                }
                SIGNAL.store(sig as usize, Ordering::SeqCst);
            };
            // SAFETY: the action only touches atomics and calls an async-signal-safe function.
            if let Err(e) = unsafe { signal_hook::low_level::register(sig, action) } {
                eprintln!("warning: cannot handle signal {sig} ({e}); a signal during training stops it without a checkpoint");
            }
        }
    });
}

/// While alive, a SIGTERM or SIGINT sets the stop request instead of terminating.
pub(crate) struct Watch(());

impl Watch {
    pub(crate) fn start() -> Watch {
        install();
        TRAINING.fetch_add(1, Ordering::SeqCst);
        Watch(())
    }

    /// The signal that asked to stop ("SIGTERM"), once; None when none did.
    pub(crate) fn take_request(&self) -> Option<&'static str> {
        REQUESTED.swap(false, Ordering::SeqCst).then(|| if SIGNAL.load(Ordering::SeqCst) == SIGINT as usize { "SIGINT" } else { "SIGTERM" })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        TRAINING.fetch_sub(1, Ordering::SeqCst);
        // A signal that came after the loop's last look is not lost: it terminates now, as it would have.
        if TRAINING.load(Ordering::SeqCst) == 0 && REQUESTED.swap(false, Ordering::SeqCst) {
            let sig = SIGNAL.load(Ordering::SeqCst) as i32;
            let _ = signal_hook::low_level::emulate_default_handler(sig);
        }
    }
}
