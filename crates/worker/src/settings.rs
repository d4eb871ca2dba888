//! The worker's settings: the services' (shared with the web) plus the budget and the number
//! of children, all from the environment, checked once at start-up.

use fom_core::config::EnvReader;
use fom_queue::{Connected, RedisUse};

pub struct WorkerSettings {
    pub services: fom_core::services::Settings,
    /// `WORKER_MAX_RSS_MB`: a child leaves after a job that took it over this.
    pub max_rss_mb: f64,
    /// `WORKER_MAX_JOBS`: a child leaves after this many jobs (0: no limit).
    pub max_jobs: u64,
    /// `WORKER_PROCESSES`: children the supervisor runs: `auto` (the default) scales with the
    /// queue and the dyno's memory, a number fixes it.
    pub processes: Processes,
    /// How `auto` scales.
    pub scaling: crate::scaling::ScalingSettings,
    /// `WORKER_TEST_HOOKS`: test-only behaviours keyed on file names (see `test_hooks`).
    pub test_hooks: bool,
}

impl WorkerSettings {
    pub fn from_env(env: &mut EnvReader) -> Self {
        Self {
            services: fom_core::services::Settings::from_env(env),
            max_rss_mb: env.number("WORKER_MAX_RSS_MB", 200.0, 32.0, 65_536.0),
            max_jobs: env.number("WORKER_MAX_JOBS", 0, 0, u64::MAX),
            processes: Processes::from_env(env),
            scaling: crate::scaling::ScalingSettings::from_env(env),
            test_hooks: env.flag("WORKER_TEST_HOOKS", false),
        }
    }

    /// Redis, the queues and the services over the queue's one multiplexed connection.
    pub async fn connect(&self) -> anyhow::Result<Connected> {
        Ok(fom_queue::connect(&self.services, RedisUse::Shared).await?)
    }

    /// The same for an operator's command: a person is waiting, so an absent Redis is
    /// waited for as briefly as the web's pushes wait.
    pub async fn connect_briefly(&self) -> anyhow::Result<Connected> {
        let mut settings = self.services.clone();
        settings.redis.outage_wait = settings.redis.outage_wait.min(fom_queue::PUSH_WAIT);
        Ok(fom_queue::connect(&settings, RedisUse::Shared).await?)
    }
}

/// `WORKER_PROCESSES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    /// Between 1 and `WORKER_MAX_PROCESSES`, as waiting jobs, memory and Redis connections allow.
    Auto,
    Fixed(usize),
}

impl Processes {
    fn from_env(env: &mut EnvReader) -> Self {
        let raw = env.text("WORKER_PROCESSES", "auto");
        if raw.trim().eq_ignore_ascii_case("auto") {
            return Processes::Auto;
        }
        match raw.trim().parse::<usize>() {
            Ok(n) if (1..=16).contains(&n) => Processes::Fixed(n),
            _ => {
                env.problem("WORKER_PROCESSES", "must be auto or a number from 1 to 16");
                Processes::Fixed(1)
            }
        }
    }
}
