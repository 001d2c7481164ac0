//! Job detection: who am I within the launch (rank, size, local rank) and which launch is this
//! (the job key), read from the environment only — never by calling MPI (ARCHITECTURE.md §2, §5).
//!
//! Precedence matters: `mpirun` inside an `sbatch` allocation inherits `SLURM_PROCID=0` on every
//! rank, so the MPI launchers' own variables are consulted before Slurm's.

use crate::{attr, semconv};
use opentelemetry_proto::tonic::common::v1::KeyValue;

/// What the environment says about this process's place in a parallel launch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Job {
    /// Short launcher name, e.g. `slurm`, `openmpi`; `none` outside any launcher.
    pub launcher: &'static str,
    pub rank: u32,
    pub size: u32,
    pub local_rank: u32,
    /// Identical on every rank of one launch and different between launches; `None` when the
    /// launcher exports nothing usable (then ids are random and no step root is written).
    pub key: Option<String>,
    /// Set when the key only holds for the ranks of one node (MPICH Hydra): worth a warning.
    pub key_is_node_local: bool,
    pub slurm: Option<SlurmIds>,
    /// The batch system's job id, for `{job}` in path templates.
    pub job_id: Option<String>,
    pub step_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmIds {
    pub cluster: Option<String>,
    pub job_id: String,
    pub step_id: Option<String>,
}

impl Job {
    /// Resource attributes describing the rank (bsb-otel's names plus Slurm's ids).
    pub fn resource_attributes(&self) -> Vec<KeyValue> {
        let mut out = vec![
            attr::int(semconv::MPI_RANK, self.rank as i64),
            attr::int(semconv::MPI_SIZE, self.size as i64),
            attr::int(semconv::MPI_LOCAL_RANK, self.local_rank as i64),
            attr::string(semconv::LAUNCHER, self.launcher),
        ];
        if let Some(s) = &self.slurm {
            out.push(attr::string(semconv::SLURM_JOB_ID, &s.job_id));
            if let Some(step) = &s.step_id {
                out.push(attr::string(semconv::SLURM_STEP_ID, step));
            }
            if let Some(c) = &s.cluster {
                out.push(attr::string(semconv::SLURM_CLUSTER_NAME, c));
            }
        }
        out
    }
}

/// This node's name as the kernel reports it ("unknown" if it cannot be read), for the
/// resource's `host.name` and for job keys that need one.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// A variable of the process environment; unset, empty and not-UTF-8 values are all absent, the
/// last with a warning (an environment problem never stops the job).
pub fn env_value(key: &str) -> Option<String> {
    match std::env::var(key) {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            tracing::warn!("{key} is not valid UTF-8; otel-run ignores it");
            None
        }
    }
}

/// Reads the process environment.
pub fn detect_from_env() -> Job {
    let host = hostname();
    detect(&env_value, &host, std::os::unix::process::parent_id())
}

/// Pure detection over an environment lookup, so every launcher is unit-testable.
pub fn detect(env: &dyn Fn(&str) -> Option<String>, host: &str, parent_pid: u32) -> Job {
    let num = |k: &str| env(k).and_then(|v| v.trim().parse::<u32>().ok());
    let slurm = slurm_ids(env);
    let slurm_key = slurm.as_ref().map(|s| {
        format!(
            "slurm:{}:{}.{}:{}",
            s.cluster.as_deref().unwrap_or(""),
            s.job_id,
            s.step_id.as_deref().unwrap_or("batch"),
            env("SLURM_RESTART_COUNT").unwrap_or_else(|| "0".into())
        )
    });
    let base = Job {
        launcher: "none",
        rank: 0,
        size: 1,
        local_rank: 0,
        key: None,
        key_is_node_local: false,
        job_id: slurm.as_ref().map(|s| s.job_id.clone()),
        step_id: slurm.as_ref().and_then(|s| s.step_id.clone()),
        slurm: slurm.clone(),
    };

    // OpenMPI's mpirun (ORTE/PRRTE): its own variables, exported before the program starts.
    if let Some(rank) = num("OMPI_COMM_WORLD_RANK") {
        let key = env("PMIX_NAMESPACE")
            .or_else(|| env("OMPI_MCA_ess_base_jobid"))
            .map(|k| format!("openmpi:{k}"));
        return Job {
            launcher: "openmpi",
            rank,
            size: num("OMPI_COMM_WORLD_SIZE").unwrap_or(rank + 1),
            local_rank: num("OMPI_COMM_WORLD_LOCAL_RANK").unwrap_or(0),
            key,
            ..base
        };
    }
    // PMIx direct launch (srun --mpi=pmix, prterun): the namespace names the job.
    if let Some(rank) = num("PMIX_RANK") {
        return Job {
            launcher: "pmix",
            rank,
            size: num("SLURM_NTASKS")
                .or_else(|| num("PMIX_SIZE"))
                .unwrap_or(rank + 1),
            local_rank: num("SLURM_LOCALID")
                .or_else(|| num("PMIX_LOCAL_RANK"))
                .unwrap_or(0),
            key: env("PMIX_NAMESPACE")
                .map(|k| format!("pmix:{k}"))
                .or(slurm_key),
            ..base
        };
    }
    // PMI-1/PMI-2: MPICH's Hydra sets MPI_LOCALRANKID; Slurm's pmi2 plugin does not.
    if let Some(rank) = num("PMI_RANK") {
        let size = num("PMI_SIZE").unwrap_or(rank + 1);
        if let Some(local) = num("MPI_LOCALRANKID") {
            // Hydra exports no job id. All ranks on a node share one hydra_pmi_proxy parent, so
            // (host, parent pid) names the launch on this node only — which is the whole launch
            // when every rank is local.
            let all_local = num("MPI_LOCALNRANKS") == Some(size);
            return Job {
                launcher: "mpich-hydra",
                rank,
                size,
                local_rank: local,
                key: Some(format!("hydra:{host}:{parent_pid}")),
                key_is_node_local: !all_local,
                ..base
            };
        }
        return Job {
            launcher: "pmi2",
            rank,
            size,
            local_rank: num("SLURM_LOCALID").unwrap_or(0),
            key: slurm_key.or_else(|| env("PMI_JOBID").map(|k| format!("pmi:{k}"))),
            ..base
        };
    }
    if let (Some(rank), Some(_)) = (num("SLURM_PROCID"), &slurm) {
        return Job {
            launcher: "slurm",
            rank,
            size: num("SLURM_NTASKS")
                .or_else(|| num("SLURM_NPROCS"))
                .unwrap_or(rank + 1),
            local_rank: num("SLURM_LOCALID").unwrap_or(0),
            key: slurm_key,
            ..base
        };
    }
    if let Some(rank) = num("FLUX_TASK_RANK") {
        let job_id = env("FLUX_JOB_ID");
        return Job {
            launcher: "flux",
            rank,
            size: num("FLUX_JOB_SIZE").unwrap_or(rank + 1),
            local_rank: num("FLUX_TASK_LOCAL_ID").unwrap_or(0),
            key: job_id.as_ref().map(|j| format!("flux:{j}")),
            job_id,
            ..base
        };
    }
    // PBS/Torque (pbsdsh): PBS_VNODENUM is the 0-based task index, PBS_TASKNUM 1-based.
    if let Some(rank) =
        num("PBS_VNODENUM").or_else(|| num("PBS_TASKNUM").map(|t| t.saturating_sub(1)))
    {
        let job_id = env("PBS_JOBID");
        return Job {
            launcher: "pbs",
            rank,
            size: num("PBS_NP").unwrap_or(rank + 1),
            local_rank: 0,
            key: job_id.as_ref().map(|j| format!("pbs:{j}")),
            job_id,
            ..base
        };
    }
    // LSF (blaunch): LSF_PM_TASKID is 1-based.
    if let Some(task) = num("LSF_PM_TASKID") {
        let job_id = env("LSB_JOBID");
        let rank = task.saturating_sub(1);
        return Job {
            launcher: "lsf",
            rank,
            size: num("LSB_DJOB_NUMPROC").unwrap_or(rank + 1),
            local_rank: 0,
            key: job_id
                .as_ref()
                .map(|j| format!("lsf:{j}.{}", env("LSB_JOBINDEX").unwrap_or_default())),
            job_id,
            ..base
        };
    }
    base
}

fn slurm_ids(env: &dyn Fn(&str) -> Option<String>) -> Option<SlurmIds> {
    let job_id = env("SLURM_JOB_ID").or_else(|| env("SLURM_JOBID"))?;
    Some(SlurmIds {
        cluster: env("SLURM_CLUSTER_NAME"),
        job_id,
        step_id: env("SLURM_STEP_ID").or_else(|| env("SLURM_STEPID")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)]) -> Job {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        detect(&|k| map.get(k).cloned(), "node1", 4242)
    }

    const SRUN: &[(&str, &str)] = &[
        ("SLURM_JOB_ID", "77"),
        ("SLURM_STEP_ID", "0"),
        ("SLURM_CLUSTER_NAME", "localci"),
        ("SLURM_PROCID", "3"),
        ("SLURM_NTASKS", "4"),
        ("SLURM_LOCALID", "3"),
    ];

    #[test]
    fn table_of_launchers() {
        // (environment, launcher, rank, size, local, key)
        // (environment, launcher, rank, size, local rank, job key)
        type Case<'a> = (
            Vec<(&'a str, &'a str)>,
            &'a str,
            u32,
            u32,
            u32,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (vec![], "none", 0, 1, 0, None),
            (
                SRUN.to_vec(),
                "slurm",
                3,
                4,
                3,
                Some("slurm:localci:77.0:0"),
            ),
            (
                vec![
                    ("OMPI_COMM_WORLD_RANK", "1"),
                    ("OMPI_COMM_WORLD_SIZE", "4"),
                    ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
                    ("PMIX_NAMESPACE", "prterun-x-1@1"),
                ],
                "openmpi",
                1,
                4,
                1,
                Some("openmpi:prterun-x-1@1"),
            ),
            (
                [
                    SRUN,
                    &[("PMIX_RANK", "2"), ("PMIX_NAMESPACE", "slurm.pmix.77.0")],
                ]
                .concat(),
                "pmix",
                2,
                4,
                3,
                Some("pmix:slurm.pmix.77.0"),
            ),
            (
                vec![
                    ("PMI_RANK", "2"),
                    ("PMI_SIZE", "4"),
                    ("MPI_LOCALRANKID", "2"),
                ],
                "mpich-hydra",
                2,
                4,
                2,
                Some("hydra:node1:4242"),
            ),
            (
                [
                    SRUN,
                    &[("PMI_RANK", "1"), ("PMI_SIZE", "4"), ("PMI_JOBID", "77.0")],
                ]
                .concat(),
                "pmi2",
                1,
                4,
                3,
                Some("slurm:localci:77.0:0"),
            ),
            (
                vec![
                    ("FLUX_TASK_RANK", "5"),
                    ("FLUX_JOB_SIZE", "8"),
                    ("FLUX_TASK_LOCAL_ID", "1"),
                    ("FLUX_JOB_ID", "f123"),
                ],
                "flux",
                5,
                8,
                1,
                Some("flux:f123"),
            ),
            (
                vec![
                    ("PBS_VNODENUM", "2"),
                    ("PBS_NP", "4"),
                    ("PBS_JOBID", "9.pbs"),
                ],
                "pbs",
                2,
                4,
                0,
                Some("pbs:9.pbs"),
            ),
            (
                vec![
                    ("LSF_PM_TASKID", "3"),
                    ("LSB_DJOB_NUMPROC", "4"),
                    ("LSB_JOBID", "55"),
                ],
                "lsf",
                2,
                4,
                0,
                Some("lsf:55."),
            ),
        ];
        for (env, launcher, rank, size, local, key) in cases {
            let job = run(&env);
            assert_eq!(
                (
                    job.launcher,
                    job.rank,
                    job.size,
                    job.local_rank,
                    job.key.as_deref()
                ),
                (launcher, rank, size, local, key),
                "env {env:?}"
            );
        }
    }

    #[test]
    fn mpirun_inside_sbatch_beats_inherited_slurm_procid() {
        // The batch script's SLURM_PROCID=0 is inherited by every mpirun rank.
        let job = run(&[
            ("SLURM_JOB_ID", "77"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("PMIX_NAMESPACE", "ns"),
        ]);
        assert_eq!((job.launcher, job.rank), ("openmpi", 3));
        assert_eq!(job.slurm.unwrap().job_id, "77");
    }

    #[test]
    fn batch_step_key_has_no_step_id() {
        let job = run(&[("SLURM_JOB_ID", "8"), ("SLURM_PROCID", "0")]);
        assert_eq!(job.key.as_deref(), Some("slurm::8.batch:0"));
    }
}
