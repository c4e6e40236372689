//! Journal fields from arbitrary bytes: the record builder never panics and always writes one
//! well-formed msgpack map whose entries account for every field with a `=`.

use kb_inputs::systemd::record::{compose_tag, valid_match, FieldOptions, Fields};
use proptest::prelude::*;

fn field() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Anything: no '=', NUL, invalid UTF-8, leading underscores.
        proptest::collection::vec(any::<u8>(), 0..64),
        // FIELD=value shapes with few distinct names, so repeats happen.
        (
            proptest::sample::select(vec!["A", "_A", "a", "__A", "", "_", "MESSAGE"]),
            proptest::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(k, v)| {
                let mut f = k.as_bytes().to_vec();
                f.push(b'=');
                f.extend(v);
                f
            }),
        // Huge values.
        (0usize..300_000).prop_map(|n| {
            let mut f = b"BIG=".to_vec();
            f.resize(4 + n, b'x');
            f
        }),
    ]
}

/// A msgpack str, UTF-8 or not (journal data is bytes).
fn is_str(v: &rmpv::Value) -> bool {
    matches!(v, rmpv::Value::String(_))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_fields_make_one_valid_map(
        fields in proptest::collection::vec(field(), 0..24),
        lowercase in any::<bool>(),
        strip in any::<bool>(),
        max_fields in 0usize..30,
    ) {
        let mut f = Fields::new(FieldOptions { lowercase, strip_underscores: strip, max_fields });
        let mut stored = 0usize;
        for d in &fields {
            if !f.wants_more() {
                break;
            }
            let item = if strip { d.strip_prefix(b"_").unwrap_or(d) } else { &d[..] };
            if item.contains(&b'=') {
                stored += 1;
            }
            f.add(d);
        }
        prop_assert!(stored <= max_fields);
        let mut buf = Vec::new();
        f.write_body(&mut buf);
        let mut rest = &buf[..];
        let v = rmpv::decode::read_value(&mut rest).expect("a msgpack value");
        prop_assert!(rest.is_empty());
        let map = v.as_map().expect("a map");
        let mut values = 0usize;
        for (k, v) in map {
            prop_assert!(is_str(k));
            match v {
                rmpv::Value::Array(a) => {
                    prop_assert!(a.len() >= 2);
                    prop_assert!(a.iter().all(is_str));
                    values += a.len();
                }
                other => {
                    prop_assert!(is_str(other));
                    values += 1;
                }
            }
            if lowercase {
                prop_assert!(!k.as_slice().unwrap().iter().any(u8::is_ascii_uppercase));
            }
        }
        prop_assert_eq!(values, stored);
    }

    #[test]
    fn tags_and_matches_take_any_input(tag in ".{0,20}", unit in proptest::collection::vec(any::<u8>(), 0..40), m in proptest::collection::vec(any::<u8>(), 0..40)) {
        let t = compose_tag(&tag, &unit);
        if !tag.contains('*') {
            prop_assert_eq!(t, tag);
        }
        let _ = valid_match(&m);
    }
}
