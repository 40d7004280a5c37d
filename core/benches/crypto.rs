//! The cryptography every paired peer runs: the SPAKE2 exchange (start, finish) and sealing and opening
//! datagrams on the [`SecureChannel`] at datagram-like sizes.
//! Run: `cargo bench -p punch-core --bench crypto` (filter with a name, e.g. `-- seal`).
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use punch_core::secure::{Code, Pake, Role, SecureChannel};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The plaintext sizes measured: a ping, a chat line, a longer line, a near-MTU datagram.
const SIZES: [usize; 4] = [40, 100, 200, 1200];
/// Associated data as the peer passes it (the pair id).
const AAD: &[u8] = b"\x01\x02\x03\x04\x05\x06\x07\x08";

fn code() -> Code {
    Code::parse("7-guitar-revenge").unwrap()
}

fn pake(c: &mut Criterion) {
    let mut g = c.benchmark_group("pake");
    g.measurement_time(Duration::from_secs(3));
    let code = code();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    g.bench_function("start", |b| {
        b.iter(|| black_box(Pake::start(black_box(&code), &mut rng)))
    });
    let (_, theirs) = Pake::start(&code, &mut rng);
    g.bench_function("finish", |b| {
        b.iter_batched(
            || Pake::start(&code, &mut rng).0,
            |p| black_box(p.finish(black_box(&theirs)).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("exchange (both sides, and both channels)", |b| {
        b.iter(|| {
            let (pa, ma) = Pake::start(&code, &mut rng);
            let (pb, mb) = Pake::start(&code, &mut rng);
            let ra = Role::from_messages(&ma, &mb).unwrap();
            let a = SecureChannel::new(&pa.finish(&mb).unwrap(), ra);
            let b = SecureChannel::new(&pb.finish(&ma).unwrap(), ra.opposite());
            black_box((a, b))
        })
    });
    g.finish();
}

/// Two channels keyed alike (the PAKE's result does not matter for the speed of sealing).
fn channels() -> (SecureChannel, SecureChannel) {
    let key = [7u8; 32];
    (
        SecureChannel::new(&key, Role::Low),
        SecureChannel::new(&key, Role::High),
    )
}

fn seal_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel");
    g.measurement_time(Duration::from_secs(2));
    for len in SIZES {
        g.throughput(Throughput::Bytes(len as u64));
        let plaintext = vec![0x5a; len];
        g.bench_with_input(BenchmarkId::new("seal", len), &plaintext, |b, p| {
            let (mut a, _) = channels();
            b.iter(|| black_box(a.seal(AAD, black_box(p)).unwrap()))
        });
        g.bench_with_input(BenchmarkId::new("open", len), &plaintext, |b, p| {
            let (mut a, mut r) = channels();
            // Opened in sealing order, each once: every one authenticates and moves the window on.
            b.iter_batched(
                || a.seal(AAD, p).unwrap(),
                |s| black_box(r.open(AAD, black_box(&s)).unwrap()),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.bench_function("new (HKDF: two keys and the confirmation)", |b| {
        b.iter(|| black_box(SecureChannel::new(black_box(&[7u8; 32]), Role::Low)))
    });
    g.finish();
}

criterion_group!(benches, pake, seal_open);
criterion_main!(benches);
