//! # punch-sim: a deterministic network simulator for punch-core
//!
//! Runs the sans-IO machines of `punch_core` on a simulated network of hosts, links and NATs, in virtual
//! time, reproducibly: the same seed gives the same run and a byte-identical [`trace::Trace`].
//!
//! Read in this order, one concept per file:
//! * [`clock`]: virtual time (one base instant, durations from it).
//! * [`rng`]: one seed, named sub-generators.
//! * [`link`]: latency, jitter, loss, duplication, reordering, down windows.
//! * [`nat`]: RFC 4787 NAT boxes, Linux conntrack and firewalls.
//! * [`profile`]: named NAT profiles (`port-restricted-linux`, `symmetric`, ...).
//! * [`host`]: any `punch_core::Machine` on a simulated host (the world drives the core's own trait).
//! * [`echo`]: a tiny echo machine for testing the network model.
//! * [`world`]: topology and the event loop.
//! * [`trace`]: the readable record.
//! * [`matrix`]: every pair of profiles over many seeds, as a table or JSON.
//! * [`paths`]: the path suite: same NAT, hairpinning, flush, rebinding, mapping timeout, dual stack.
//! * [`scenario`]: server + peers + NATs in a few lines, and the outcome of a run.
//!
//! Determinism rules: only `BTreeMap`/`BTreeSet`/`Vec` where iteration order can show (it never depends on
//! hashing; the few hash tables, keyed by socket addresses, use a fixed hasher and are only looked up, or
//! sorted before their order matters), every
//! random draw comes from a generator derived from the scenario seed, and the real clock is read exactly
//! once ([`clock::base_instant`]) for an arbitrary origin that never shows in results.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::disallowed_methods)]

pub mod clock;
pub mod echo;
mod fx;
pub mod host;
pub mod link;
pub mod matrix;
pub mod nat;
pub mod paths;
pub mod profile;
pub mod rng;
pub mod scenario;
pub mod trace;
pub mod world;

pub use clock::{ms, secs, Ms};
pub use echo::EchoNode;
pub use host::Host;
pub use link::LinkConfig;
pub use matrix::{run_matrix, worker_threads, Matrix, MatrixConfig};
pub use nat::{NatConfig, PortAlloc};
pub use profile::{Nat, Profile};
pub use scenario::{Knowledge, Outcome, PathKind, Scenario};
pub use trace::{Detail, Trace};
pub use world::{HostId, NatId, RealmId, SimError, World};
