//! The benchmark driver behind `scripts/bench`: it runs one or two builds of wxauth (release
//! binaries, real PostgreSQL, a fast fake WeChat in process) under closed-loop load and prints
//! throughput, latency percentiles, CPU per call of each process and memory, so two builds are
//! compared in the same run on the same machine.

pub mod flows;
pub mod load;
pub mod memory;
pub mod procfs;
pub mod stats;
pub mod system;
pub mod validate;

/// The echo server's generated types.
pub mod echo {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("bench.v1");
}
