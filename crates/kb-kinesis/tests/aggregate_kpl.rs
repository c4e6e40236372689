//! Spec §2.7 (`simple_aggregation`) and §2.8 (KPL aggregation): contents, exact size
//! prediction, and the round trip through a KPL deaggregator (the crate's `deaggregate`, plus
//! an independent decoder written here from the KPL `messages.proto`).

use kb_kinesis::aggregate::{deaggregate, KplAggregate, SimpleAggregate, UserRecord, KPL_MAGIC};
use md5::{Digest, Md5};
use proptest::prelude::*;

/// An independent reading of the KPL format: (partition key table, [(index, data)]).
fn decode_independently(data: &[u8]) -> (Vec<String>, Vec<(u64, Vec<u8>)>) {
    assert_eq!(&data[..4], &KPL_MAGIC);
    let proto = &data[4..data.len() - 16];
    assert_eq!(
        &Md5::digest(proto)[..],
        &data[data.len() - 16..],
        "MD5 of the protobuf"
    );
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0;
        let mut shift = 0;
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    fn field<'a>(b: &'a [u8], i: &mut usize) -> (u64, &'a [u8]) {
        let tag = varint(b, i);
        assert_eq!(tag & 7, 2, "length-delimited");
        let n = varint(b, i) as usize;
        let s = &b[*i..*i + n];
        *i += n;
        (tag >> 3, s)
    }
    let (mut keys, mut records) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < proto.len() {
        match field(proto, &mut i) {
            (1, k) => keys.push(String::from_utf8(k.to_vec()).unwrap()),
            (3, rec) => {
                let mut j = 0;
                assert_eq!(rec[0], 0x08, "partition_key_index first");
                j += 1;
                let idx = varint(rec, &mut j);
                let (f, d) = field(rec, &mut j);
                assert_eq!(f, 3, "data");
                assert_eq!(j, rec.len(), "no other fields");
                records.push((idx, d.to_vec()));
            }
            (f, _) => panic!("unexpected field {f}"),
        }
    }
    (keys, records)
}

#[test]
fn aggregate_kpl_layout_and_round_trip() {
    let mut a = KplAggregate::new();
    a.reset("pk-1");
    let recs: Vec<Vec<u8>> = vec![
        b"{\"a\":1}\n".to_vec(),
        Vec::new(),
        vec![0xff; 300],
        b"x".to_vec(),
    ];
    for r in &recs {
        a.push(r);
    }
    assert_eq!(a.len(), 4);
    assert_eq!(a.key(), "pk-1");
    let mut out = b"pre".to_vec();
    a.finish(&mut out);
    let data = &out[3..];
    assert_eq!(data.len(), a.size());
    let (keys, records) = decode_independently(data);
    assert_eq!(keys, ["pk-1"]);
    assert_eq!(
        records,
        recs.iter().map(|r| (0, r.clone())).collect::<Vec<_>>()
    );
    let users = deaggregate(data).unwrap().unwrap();
    assert_eq!(
        users,
        recs.iter()
            .map(|r| UserRecord {
                partition_key: "pk-1",
                data: r
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn aggregate_kpl_size_with_is_exact_across_varint_boundaries() {
    let mut a = KplAggregate::new();
    a.reset(&"k".repeat(200));
    for len in [
        0usize, 1, 122, 123, 124, 125, 126, 127, 128, 16_379, 16_380, 16_381, 16_384, 70_000,
    ] {
        let predicted = a.size_with(len);
        a.push(&vec![b'z'; len]);
        assert_eq!(a.size(), predicted, "len {len}");
        let mut out = Vec::new();
        a.finish(&mut out);
        assert_eq!(out.len(), predicted);
    }
}

#[test]
fn aggregate_kpl_closes_before_the_limit() {
    let limit = 1000;
    let mut a = KplAggregate::new();
    a.reset("key");
    let rec = vec![b'r'; 90];
    let mut n = 0;
    while a.size_with(rec.len()) + "key".len() <= limit {
        a.push(&rec);
        n += 1;
    }
    assert!(a.size() + 3 <= limit);
    assert!(a.size_with(rec.len()) + 3 > limit);
    assert_eq!(
        deaggregate(&{
            let mut o = Vec::new();
            a.finish(&mut o);
            o
        })
        .unwrap()
        .unwrap()
        .len(),
        n
    );
}

#[test]
fn aggregate_kpl_single_record_sent_plain() {
    let mut a = KplAggregate::new();
    a.reset("k");
    assert_eq!(a.single_record(), None);
    a.push(b"only\n");
    assert_eq!(a.single_record(), Some(&b"only\n"[..]));
    a.push(b"second\n");
    assert_eq!(a.single_record(), None);
    // Deaggregators pass a plain record through: not an aggregate.
    assert_eq!(deaggregate(b"only\n").unwrap(), None);
}

#[test]
fn aggregate_kpl_reuse_after_reset() {
    let mut a = KplAggregate::new();
    a.reset("first-key");
    a.push(b"a");
    a.push(b"b");
    a.reset("k2");
    assert!(a.is_empty());
    a.push(b"c");
    a.push(b"d");
    let mut out = Vec::new();
    a.finish(&mut out);
    let users = deaggregate(&out).unwrap().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u.partition_key == "k2"));
}

#[test]
fn aggregate_kpl_md5_mismatch_is_not_an_aggregate() {
    let mut a = KplAggregate::new();
    a.reset("k");
    a.push(b"a");
    a.push(b"b");
    let mut out = Vec::new();
    a.finish(&mut out);
    let last = out.len() - 1;
    out[last] ^= 1;
    assert_eq!(deaggregate(&out).unwrap(), None);
}

proptest! {
    #[test]
    fn aggregate_kpl_round_trip_any_records(
        key in "\\PC{1,40}",
        recs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..400), 2..30),
    ) {
        let mut a = KplAggregate::new();
        a.reset(&key);
        for r in &recs {
            let predicted = a.size_with(r.len());
            a.push(r);
            prop_assert_eq!(a.size(), predicted);
        }
        let mut out = Vec::new();
        a.finish(&mut out);
        let users = deaggregate(&out).unwrap().unwrap();
        prop_assert_eq!(users.len(), recs.len());
        for (u, r) in users.iter().zip(&recs) {
            prop_assert_eq!(u.partition_key, key.as_str());
            prop_assert_eq!(u.data, &r[..]);
        }
        let (keys, records) = decode_independently(&out);
        prop_assert_eq!(keys, vec![key.clone()]);
        prop_assert_eq!(records.len(), recs.len());
    }
}

#[test]
fn aggregate_simple_concatenates_within_limit() {
    let mut s = SimpleAggregate::new(20);
    assert!(s.try_push(b"{\"a\":1}\n"));
    assert!(s.try_push(b"{\"b\":2}\n"));
    assert!(
        !s.try_push(b"{\"c\":3}\n"),
        "24 > 20: close the aggregate first"
    );
    assert_eq!(
        s.data(),
        b"{\"a\":1}\n{\"b\":2}\n",
        "each record keeps its newline"
    );
    assert_eq!(s.len(), 2);
    assert!(s.fits(4));
    assert!(s.try_push(b"1234"), "exactly the limit fits");
    assert_eq!(s.data().len(), 20);
    s.clear();
    assert!(s.is_empty());
    assert!(
        !s.try_push(&[b'x'; 21]),
        "a record larger than the limit follows §3"
    );
    s.set_limit(30);
    assert_eq!(s.limit(), 30);
    assert!(s.try_push(&[b'x'; 21]));
}

/// `shard_aware`: records of many keys in one aggregate (the KPL packs per shard): each keeps
/// its own key through the table, and sizes are predicted exactly, past 128 keys too (a
/// two-byte index).
#[test]
fn keyed_records_keep_their_keys_and_sizes_are_exact() {
    let mut agg = kb_kinesis::aggregate::KplAggregate::new();
    agg.reset("k0");
    let mut want = Vec::new();
    for i in 0..300 {
        let key = format!("k{}", i % 150);
        let data = format!("record {i}").into_bytes();
        let predicted = agg.size_with_keyed(&key, data.len());
        agg.push_keyed(&key, &data);
        assert_eq!(agg.size(), predicted, "record {i}");
        want.push((key, data));
    }
    let mut out = Vec::new();
    agg.finish(&mut out);
    assert_eq!(out.len(), agg.size());
    let got: Vec<(String, Vec<u8>)> = kb_kinesis::aggregate::deaggregate(&out)
        .unwrap()
        .expect("an aggregate")
        .into_iter()
        .map(|u| (u.partition_key.to_string(), u.data.to_vec()))
        .collect();
    assert_eq!(got, want);
    // The independent decoder reads the same table and indexes.
    let (table, records) = decode_independently(&out);
    assert_eq!(table.len(), 150);
    let indep: Vec<(String, Vec<u8>)> = records
        .into_iter()
        .map(|(i, d)| (table[i as usize].clone(), d))
        .collect();
    assert_eq!(indep, want);
    // One key only: the same bytes as the single-key pushes.
    let (mut a, mut b) = (
        kb_kinesis::aggregate::KplAggregate::new(),
        kb_kinesis::aggregate::KplAggregate::new(),
    );
    a.reset("k");
    b.reset("k");
    a.push(b"x");
    b.push_keyed("k", b"x");
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.finish(&mut x);
    b.finish(&mut y);
    assert_eq!(x, y);
}
