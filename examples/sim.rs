//! 2-D heat diffusion (Jacobi) over MPI, instrumented with otel-run-sdk: the README's flagship
//! example. The N×N plate has a hot top edge (1.0) and cold other edges (0.0); rows are split
//! across ranks, each step exchanges halo rows with the neighbours, relaxes the interior and
//! allreduces the residual; every K steps each rank checkpoints its rows.
//!
//! ```text
//! cargo build --release --features mpi --example sim
//! srun -n 4 otel-run -- target/release/examples/sim --steps 200 --grid 256 --checkpoint-every 50 --out ckpt
//! ```
//! Phases (spans): setup, timestep (shared by all ranks), halo, compute, allreduce, checkpoint.
//! Prints the final residual (deterministic for a given steps/grid/ranks and MPI library).
//! `--divergent` instead runs rank-divergent collective spans (ranks 0 and 2 `a` then `b`, the
//! others only `b`), which a broadcast-based tracer would deadlock on, then a span shared over
//! even/odd sub-communicators (`pair`) and a per-rank one under `local_tracing` (`local`).

use mpi::collective::SystemOperation;
use mpi::point_to_point as p2p;
use mpi::traits::*;
use opentelemetry::KeyValue;
use otel_run_sdk::mpi::CollectiveTracer;
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    steps: u64,
    grid: usize,
    checkpoint_every: u64,
    out: PathBuf,
    divergent: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        steps: 100,
        grid: 128,
        checkpoint_every: 0,
        out: PathBuf::from("."),
        divergent: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |flag: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: want a non-negative integer, got {v:?}"))
        };
        match flag.as_str() {
            "--steps" => a.steps = num("--steps", value("--steps")?)?,
            "--grid" => a.grid = num("--grid", value("--grid")?)? as usize,
            "--checkpoint-every" => {
                a.checkpoint_every = num("--checkpoint-every", value("--checkpoint-every")?)?
            }
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--divergent" => a.divergent = true,
            "-h" | "--help" => {
                println!("usage: sim [--steps N] [--grid N] [--checkpoint-every K] [--out DIR] [--divergent]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if a.grid < 3 {
        return Err("--grid: want at least 3".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sim: {e}");
            return ExitCode::from(2);
        }
    };
    // Before MPI: the guard drops after MPI_Finalize and flushes then.
    let _otel = otel_run_sdk::init().expect("first and only init");
    let Some(universe) = mpi::initialize() else {
        eprintln!("sim: MPI was already initialised");
        return ExitCode::FAILURE;
    };
    otel_run_sdk::ensure_spans_on_exit();
    let world = universe.world();
    let tracer = CollectiveTracer::new(&world);
    if args.divergent {
        divergent(&tracer, &world);
        return ExitCode::SUCCESS;
    }
    match run(&args, &tracer, &world) {
        Ok(residual) => {
            if world.rank() == 0 {
                println!(
                    "steps {} grid {} ranks {} residual {residual:.12e}",
                    args.steps,
                    args.grid,
                    world.size()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sim: rank {}: {e}", world.rank());
            world.abort(1)
        }
    }
}

/// Rows [first, first + count) of the grid belong to `rank`.
fn rows_of(rank: usize, size: usize, n: usize) -> (usize, usize) {
    let base = n / size;
    let extra = n % size;
    let count = base + usize::from(rank < extra);
    let first = rank * base + rank.min(extra);
    (first, count)
}

fn run(
    args: &Args,
    t: &CollectiveTracer,
    world: &mpi::topology::SimpleCommunicator,
) -> Result<f64, String> {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let n = args.grid;
    if n < size {
        return Err(format!("--grid {n} is smaller than the {size} ranks"));
    }
    let setup = t.trace("setup");
    let (first, count) = rows_of(rank, size, n);
    // Local block with one ghost row above and below.
    let mut u = vec![0.0f64; (count + 2) * n];
    for (li, gi) in (first..first + count).enumerate() {
        if gi == 0 {
            u[(li + 1) * n..(li + 2) * n].fill(1.0);
        }
    }
    let mut next = u.clone();
    if args.checkpoint_every > 0 {
        std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    }
    setup.set_attribute(KeyValue::new("sim.rows", count as i64));
    drop(setup);

    let up = (rank > 0).then(|| world.process_at_rank(rank as i32 - 1));
    let down = (rank + 1 < size).then(|| world.process_at_rank(rank as i32 + 1));
    let mut residual = 0.0;
    for step in 0..args.steps {
        let ts = t.trace("timestep");
        ts.set_attribute(KeyValue::new("sim.step", step as i64));
        {
            let _h = t.trace("halo");
            // Downward: my last row to `down`, my top ghost from `up`.
            let last = u[count * n..(count + 1) * n].to_vec();
            let firstrow = u[n..2 * n].to_vec();
            match (up, down) {
                (Some(up), Some(down)) => {
                    p2p::send_receive_into(&last[..], &down, &mut u[..n], &up);
                    p2p::send_receive_into(&firstrow[..], &up, &mut u[(count + 1) * n..], &down);
                }
                (None, Some(down)) => {
                    down.send(&last[..]);
                    down.receive_into(&mut u[(count + 1) * n..]);
                }
                (Some(up), None) => {
                    up.receive_into(&mut u[..n]);
                    up.send(&firstrow[..]);
                }
                (None, None) => {}
            }
        }
        let local = {
            let _c = t.trace("compute");
            let mut local = 0.0;
            for li in 1..=count {
                let gi = first + li - 1;
                let row = li * n;
                if gi == 0 || gi == n - 1 {
                    next[row..row + n].copy_from_slice(&u[row..row + n]);
                    continue;
                }
                next[row] = u[row];
                next[row + n - 1] = u[row + n - 1];
                for j in 1..n - 1 {
                    let v =
                        0.25 * (u[row - n + j] + u[row + n + j] + u[row + j - 1] + u[row + j + 1]);
                    let d = v - u[row + j];
                    local += d * d;
                    next[row + j] = v;
                }
            }
            std::mem::swap(&mut u, &mut next);
            local
        };
        {
            let _a = t.trace("allreduce");
            let mut global = 0.0f64;
            world.all_reduce_into(&local, &mut global, SystemOperation::sum());
            residual = global.sqrt();
        }
        if args.checkpoint_every > 0 && (step + 1) % args.checkpoint_every == 0 {
            let _k = t.trace("checkpoint");
            let path = args
                .out
                .join(format!("checkpoint_{:06}_rank{rank}.bin", step + 1));
            let tmp = path.with_extension("tmp");
            let bytes: Vec<u8> = u[n..(count + 1) * n]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            std::fs::write(&tmp, &bytes)
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        drop(ts);
    }
    Ok(residual)
}

/// Ranks 0 and 2 trace "a" then "b", the others only "b": with ids derived per name and
/// occurrence, "b" is the same shared span everywhere and nobody waits for anybody.
fn divergent(t: &CollectiveTracer, world: &mpi::topology::SimpleCommunicator) {
    let rank = world.rank();
    if rank % 2 == 0 {
        let _a = t.trace("a");
        let _w = t.trace("work-a");
    }
    {
        let _b = t.trace("b");
        let _w = t.trace("work-b");
    }
    // Sharing over a sub-communicator (even and odd ranks), then no sharing at all.
    if let Some(sub) = world.split_by_color(mpi::topology::Color::with_value(rank % 2)) {
        let pairs = t.use_communicator(&sub);
        let _p = pairs.trace("pair");
        let _w = pairs.trace("work-pair");
    }
    {
        let _l = t.local_tracing();
        let _s = t.trace("local");
    }
    println!("rank {rank} done");
}
