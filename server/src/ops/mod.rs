//! What an operator touches: the Prometheus metrics ([`telemetry`]), the
//! log format ([`logging`]), and the liveness and readiness probes
//! ([`probes`]).

pub mod logging;
pub mod probes;
pub mod telemetry;
