//! The daemon as a Windows service: the service control manager (SCM) starts
//! `cro reconcile --service`, which hands its main thread to the SCM's dispatcher; the
//! daemon runs on the service thread the SCM starts, and a stop or a system shutdown asks
//! it to stop as Ctrl+C does (`super::on_stop`'s flags). The protocol is the
//! windows-service crate's (Mullvad's, kept for their VPN service): the dispatcher's
//! thread, the control handler's context and the status reports are its unsafe code,
//! tested on real Windows, rather than ours.
use std::ffi::OsString;
use std::io;
use std::sync::Mutex;
use std::time::Duration;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

/// What the service runs: the daemon, returning cro's exit code.
pub type Body = Box<dyn FnOnce() -> i32 + Send>;

/// The service's name and body, from `run_as_service` to the service thread.
static BODY: Mutex<Option<(String, Body)>> = Mutex::new(None);
/// The body's exit code, back to `run_as_service` once the dispatcher returns.
static EXIT: Mutex<Option<i32>> = Mutex::new(None);

define_windows_service!(ffi_service_main, service_main);

/// Run `body` as the service `name`: returns its exit code once the SCM has been told the
/// service stopped. Not started by the SCM (a terminal), this fails at once with
/// ERROR_FAILED_SERVICE_CONTROLLER_CONNECT (1063) and runs nothing.
pub fn run_as_service(name: &str, body: Body) -> io::Result<i32> {
    *lock(&BODY) = Some((name.to_string(), body));
    service_dispatcher::start(name, ffi_service_main).map_err(|e| match e {
        windows_service::Error::Winapi(e) => e,
        e => io::Error::other(e),
    })?;
    Ok(lock(&EXIT).take().unwrap_or(1))
}

/// Was this error the one for "not started by the service control manager"?
pub fn not_under_scm(e: &io::Error) -> bool {
    e.raw_os_error() == Some(1063)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn service_main(_arguments: Vec<OsString>) {
    let Some((name, body)) = lock(&BODY).take() else {
        return;
    };
    let handler = |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            super::ask_to_stop();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let Ok(handle) = service_control_handler::register(&name, handler) else {
        *lock(&EXIT) = Some(1);
        return;
    };
    let report = |state, accept, exit_code| {
        let _ = handle.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accept,
            exit_code,
            checkpoint: 0,
            wait_hint: Duration::ZERO,
            process_id: None,
        });
    };
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        ServiceExitCode::Win32(0),
    );
    let code = body();
    *lock(&EXIT) = Some(code);
    // A failure is the service's own code (the SCM logs "terminated with
    // service-specific error N": cro's exit code, 78 for an invalid desired file).
    let exit = match u32::try_from(code) {
        Ok(0) => ServiceExitCode::Win32(0),
        Ok(c) => ServiceExitCode::ServiceSpecific(c),
        Err(_) => ServiceExitCode::ServiceSpecific(1),
    };
    report(ServiceState::Stopped, ServiceControlAccept::empty(), exit);
}
