//! The baseline server through real sockets: echo on any path, fanout on `/pair/KEY`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload};
use stelgano_bench::echo;
use stelgano_bench::target::Target;
use stelgano_bench::ws::{connect, Ws};

async fn send(ws: &mut Ws, text: &str) {
    let mut bytes = text.as_bytes().to_vec();
    ws.write_frame(Frame::text(Payload::BorrowedMut(&mut bytes)))
        .await
        .unwrap();
}

async fn recv(ws: &mut Ws) -> (OpCode, Vec<u8>) {
    let f = tokio::time::timeout(Duration::from_secs(5), ws.read_frame())
        .await
        .expect("a frame within 5 s")
        .unwrap();
    (f.opcode, f.payload.to_vec())
}

#[tokio::test]
async fn echo_returns_frames_and_pairs_fan_out_to_both_sockets() {
    let listener = echo::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let target = Target {
        addr: listener.local_addr().unwrap(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(echo::serve(listener, async {
        let _ = stopped.await;
    }));
    let lo = "127.0.0.1".parse().unwrap();

    let mut e = connect(&target, "/", lo).await.unwrap();
    send(&mut e, "hello").await;
    assert_eq!(recv(&mut e).await, (OpCode::Text, b"hello".to_vec()));

    let mut a = connect(&target, "/pair/7", lo).await.unwrap();
    let mut b = connect(&target, "/pair/7", lo).await.unwrap();
    // The second side registers after its 101 is sent; give it a moment before A writes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut a, "from a").await;
    assert_eq!(recv(&mut b).await, (OpCode::Text, b"from a".to_vec()));
    assert_eq!(recv(&mut a).await, (OpCode::Text, b"from a".to_vec()));
    send(&mut b, "from b").await;
    assert_eq!(recv(&mut a).await, (OpCode::Text, b"from b".to_vec()));
    assert_eq!(recv(&mut b).await, (OpCode::Text, b"from b".to_vec()));

    // Another pair path is another pair: nothing crosses over.
    let mut c = connect(&target, "/pair/8", lo).await.unwrap();
    send(&mut c, "alone").await;
    assert_eq!(recv(&mut c).await, (OpCode::Text, b"alone".to_vec()));

    // A third socket on a full pair's path starts a new pair; the first pair is untouched.
    let mut extra = connect(&target, "/pair/7", lo).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut extra, "third").await;
    assert_eq!(recv(&mut extra).await, (OpCode::Text, b"third".to_vec()));
    send(&mut a, "again").await;
    assert_eq!(recv(&mut b).await, (OpCode::Text, b"again".to_vec()));
    assert_eq!(recv(&mut a).await, (OpCode::Text, b"again".to_vec()));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
