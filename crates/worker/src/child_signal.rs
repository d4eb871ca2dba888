//! SIGTERM (Heroku's shutdown) or SIGINT (Ctrl-C), and a worker child's tie to its supervisor.

/// Asks the kernel to send this process SIGTERM when `parent` (its supervisor) dies, even by
/// SIGKILL, which the supervisor cannot pass on: a child without a supervisor would go on
/// taking jobs that nobody watches, and stay after the dyno's processes should be gone. It
/// then drains as on a shutdown. False when the supervisor is already gone (it died before
/// the request took effect, so no signal would ever come): the child should not start.
///
/// The kernel ties the signal to the thread that forked the child; the supervisor spawns its
/// children from its runtime's worker threads, which live as long as it does.
#[allow(unsafe_code)]
pub fn die_with_parent(parent: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let sig = libc::SIGTERM as libc::c_ulong;
        // SAFETY: prctl(2) PR_SET_PDEATHSIG takes a signal number; no memory is passed.
        let set = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) };
        if set != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot tie the child to its supervisor"
            );
        }
    }
    // SAFETY: getppid(2) takes nothing and cannot fail.
    let ppid = unsafe { libc::getppid() };
    u32::try_from(ppid).is_ok_and(|p| p == parent)
}

pub async fn wait() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
