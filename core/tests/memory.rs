//! Heap bytes per waiting registration (issue 12): a counting global allocator measures what the server asks
//! of the allocator while it registers N waiting clients, each from its own IP and alone in its nameplate, with
//! a Register as `punch chat` sends it (`punch_core::load`). The budget is 256 bytes a registration, tables and
//! per-IP state included. `punch bench server` reports the same figure at 1,000,000 members.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use punch_core::{load, Server, ServerConfig};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const BUDGET: usize = 256;

#[test]
fn a_waiting_registration_costs_at_most_256_heap_bytes() {
    const N: u32 = 100_000;
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut config = ServerConfig::new("203.0.113.1:3478".parse().unwrap());
    config.max_members = N as usize;
    // Counted from before the server exists: it reserves its tables for `max_members` when it is made, so
    // what registrations add after that would leave the tables out. (The queues of datagrams and events are
    // counted too: a few hundred bytes in all, drained after each Register.)
    let before = LIVE.load(Ordering::Relaxed);
    let mut server = Server::new(config, t0);
    assert_eq!(load::register_waiting(&mut server, t0, 0..N), N as usize);
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(server.members(), N as usize);
    let per = (after - before) as usize / N as usize;
    let estimate = server.heap_bytes() / N as usize;
    eprintln!(
        "{N} waiting registrations: {per} heap bytes each (allocator); Server::heap_bytes: {estimate} each"
    );
    assert!(per <= BUDGET, "{per} bytes per waiting registration");
    assert!(
        estimate.abs_diff(per) * 10 <= per,
        "heap_bytes {estimate} vs measured {per}"
    );
}
