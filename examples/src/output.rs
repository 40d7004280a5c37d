//! How events look: one line for a person (stderr for status, stdout for messages) or one JSON object per line.
use punch_core::detect::NatReport;
use punch_core::nat::NatBehaviour;
use punch_core::peer::{Path, PeerEvent};
use serde_json::{json, Value};

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0
}

pub fn behaviour_json(b: &NatBehaviour) -> Value {
    let m = b.mapping.map(|m| format!("{m:?}"));
    let f = b.filtering.map(|f| format!("{f:?}"));
    let a = b.allocation.map(|a| format!("{a:?}"));
    json!({
        "kind": b.kind().label(),
        "behind_nat": b.behind_nat,
        "mapping": m,
        "filtering": f,
        "port_allocation": a,
    })
}

pub fn report_json(r: &NatReport) -> Value {
    let mut v = behaviour_json(&r.behaviour);
    let o = v.as_object_mut().expect("object");
    o.insert("kind".into(), json!(r.kind.label()));
    o.insert(
        "public_addr".into(),
        json!(r.public_addr.map(|a| a.to_string())),
    );
    o.insert("server_rtt_ms".into(), json!(r.server_rtt.map(ms)));
    o.insert("behaviour_tests".into(), json!(r.behaviour_tests));
    o.insert("server_unreachable".into(), json!(r.server_unreachable));
    o.insert(
        "mappings".into(),
        json!(r
            .mapped_addrs
            .iter()
            .map(|(s, m)| json!({"server": s.to_string(), "mapped": m.to_string()}))
            .collect::<Vec<_>>()),
    );
    o.insert("notes".into(), json!(r.notes));
    v
}

pub fn report_text(r: &NatReport) -> String {
    let mut s = format!("NAT type:        {}\n", r.kind);
    let p = r.public_addr.map_or("unknown".into(), |a| a.to_string());
    s += &format!("Public address:  {p}\n");
    let opt = |o: Option<String>| o.unwrap_or_else(|| "unknown".into());
    s += &format!(
        "Mapping:         {}\n",
        opt(r.behaviour.mapping.map(|m| format!("{m:?}")))
    );
    s += &format!(
        "Filtering:       {}\n",
        opt(r.behaviour.filtering.map(|f| format!("{f:?}")))
    );
    s += &format!(
        "Port allocation: {}\n",
        opt(r.behaviour.allocation.map(|a| format!("{a:?}")))
    );
    s += &format!(
        "Server RTT:      {}\n",
        opt(r.server_rtt.map(|d| format!("{:.2} ms", ms(d))))
    );
    for (srv, mapped) in &r.mapped_addrs {
        s += &format!("  via {srv:<24} mapped to {mapped}\n");
    }
    for n in &r.notes {
        s += &format!("note: {n}\n");
    }
    s
}

fn path_str(p: &Path) -> (&'static str, Option<String>) {
    match p {
        Path::Direct(a) => ("direct", Some(a.to_string())),
        Path::Relay => ("relay", None),
    }
}

/// The JSON line for a peer event.
pub fn peer_event_json(e: &PeerEvent) -> Value {
    match e {
        PeerEvent::NatDetected(r) => json!({"event": "nat", "nat": report_json(r)}),
        PeerEvent::Registered {
            public_addr,
            server_rtt,
        } => {
            json!({"event": "registered", "public_addr": public_addr.to_string(), "server_rtt_ms": ms(*server_rtt)})
        }
        PeerEvent::Paired {
            name,
            public_addr,
            local_addrs,
            nat,
            strategy,
        } => json!({
            "event": "paired",
            "peer_name": name,
            "peer_public_addr": public_addr.to_string(),
            "peer_local_addrs": local_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "peer_nat": behaviour_json(nat),
            "strategy": strategy.label(),
        }),
        PeerEvent::Path { path, rtt } => {
            let (kind, addr) = path_str(path);
            json!({"event": "path", "path": kind, "addr": addr, "rtt_ms": ms(*rtt)})
        }
        PeerEvent::Message { seq, text } => json!({"event": "message", "seq": seq, "text": text}),
        PeerEvent::Acked { seq } => json!({"event": "acked", "seq": seq}),
        PeerEvent::PeerFinished => json!({"event": "peer_finished"}),
        PeerEvent::ConversationDone => json!({"event": "conversation_done"}),
        PeerEvent::Error(err) => json!({"event": "error", "error": err.to_string()}),
        PeerEvent::Disconnected { reason } => json!({"event": "disconnected", "reason": reason}),
    }
}

/// The human line for a peer status event (`None` for events that are not status).
pub fn peer_event_text(e: &PeerEvent) -> Option<String> {
    Some(match e {
        PeerEvent::NatDetected(r) => format!("NAT: {} (public {:?})", r.behaviour, r.public_addr),
        PeerEvent::Registered {
            public_addr,
            server_rtt,
        } => {
            format!("registered; the server sees us as {public_addr} (rtt {:.1} ms); waiting for a peer", ms(*server_rtt))
        }
        PeerEvent::Paired {
            name,
            public_addr,
            nat,
            strategy,
            ..
        } => format!(
            "paired with {name:?} at {public_addr}, NAT {nat}; strategy: {}",
            strategy.label()
        ),
        PeerEvent::Path { path, rtt } => match path {
            Path::Direct(a) => format!("path: direct to {a} (rtt {:.2} ms)", ms(*rtt)),
            Path::Relay => format!("path: relay through the server (rtt ~{:.1} ms)", ms(*rtt)),
        },
        PeerEvent::Error(err) => format!("error: {err}"),
        PeerEvent::Disconnected { reason } => format!("disconnected: {reason}"),
        PeerEvent::PeerFinished => "the peer has finished sending".into(),
        PeerEvent::Message { .. } | PeerEvent::Acked { .. } | PeerEvent::ConversationDone => {
            return None
        }
    })
}
