//! The systemd input's journal field decoding: any bytes, split into fields at NUL, with any
//! options, give one well-formed event (a msgpack map every field with a `=` went into).
#![no_main]

use kb_core::event::{EventReader, EventTime, EventWriter};
use kb_inputs::systemd::record::{compose_tag, valid_match, FieldOptions, Fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut fields = Fields::new(FieldOptions {
        lowercase: flags & 1 != 0,
        strip_underscores: flags & 2 != 0,
        max_fields: usize::from(flags >> 2).max(1),
    });
    for f in rest.split(|b| *b == 0) {
        if !fields.wants_more() {
            break;
        }
        let _ = valid_match(f);
        fields.add(f);
    }
    let mut w = EventWriter::new();
    fields.write_event(&mut w, EventTime::new(1, 0));
    let events: Vec<_> = EventReader::new(&w.buf).collect();
    assert_eq!(events.len(), 1);
    assert!(events[0].is_ok());
    let _ = compose_tag("host.*", rest);
});
