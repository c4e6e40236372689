//! MessagePack ↔ Lua, as Fluent Bit's `src/flb_lua.c` converts (`flb_lua_pushmsgpack`,
//! `flb_lua_tomsgpack`), written against the raw Lua C API so one record costs no more than
//! the conversion itself.
//!
//! msgpack → Lua:
//! * nil → the global `flb_null` (nil unless `enable_flb_null` set it to a NULL light userdata);
//! * integers → Lua numbers (doubles: integers beyond 2^53 lose precision, as in Fluent Bit);
//! * floats → numbers; str, bin and ext (its data bytes) → strings, byte for byte;
//! * arrays and maps → tables carrying a metatable `{type = 1}` (array) or `{type = 2}` (map),
//!   so an empty array stays an array and an empty map a map on the way back.
//!
//! Lua → msgpack:
//! * a number with an integral value in i64 range → the smallest msgpack integer (so `2.0`
//!   comes back as `2`, exactly like Fluent Bit), any other number → float 64;
//! * strings → str (binary-safe: invalid UTF-8 stays as it is); booleans; nil and `flb_null`;
//! * a table with the metatable `type` 1 → an array of `#t` elements, with another `type` → a
//!   map; a table without → an array of `table.maxn(t)` elements when that is > 0 (holes become
//!   nil, other keys are lost — Fluent Bit's rule), else a map;
//! * `type_int_key` / `type_array_key` apply to map entries whose string key matches.
//!
//! Map key order. Fluent Bit writes a map in `lua_next` order, which follows LuaJIT's hash
//! layout: the string hash is seeded randomly per state, so the order differs from run to run.
//! Here it is deterministic: keys the map had when it came in keep their original order, keys
//! the script added follow, sorted (numbers, then strings bytewise, then booleans); keys of other
//! types (tables used as keys) come last in `lua_next` order. A table the script built itself has
//! all of its keys sorted.
//!
//! Deliberate differences: values Lua cannot serialise (functions, userdata, threads, cdata) are
//! written as nil where Fluent Bit writes nothing and so corrupts the map; a map entry with a nil
//! or NaN key is skipped where Fluent Bit raises a Lua error outside protected mode; an unsigned
//! integer ≥ 2^63 becomes the nearest double instead of wrapping to i64::MIN; nesting deeper than
//! [`MAX_DEPTH`] (or a table that contains itself) is an error instead of a crash; arrays and maps
//! share one metatable per kind instead of one per table.

use std::ffi::{c_char, c_int};

use kb_core::msgpack::{Cursor, Head, MsgpackError};
use kb_core::record::{write_array_len, write_map_len, write_str, Record};
use mlua::ffi::{self, lua_State};

/// Containers nested deeper than this are refused (Fluent Bit recurses until the C stack ends).
pub(crate) const MAX_DEPTH: usize = 256;

/// The metatable `type` of an array (`FLB_LUA_L2C_TYPE_ARRAY`).
pub(crate) const TYPE_ARRAY: i64 = 1;
/// The metatable `type` of a map (`FLB_LUA_L2C_TYPE_MAP`).
pub(crate) const TYPE_MAP: i64 = 2;

/// `table.maxn` beyond this is not taken as an array length (Fluent Bit would write that many
/// nils: `t[1e9] = 1` asks for a gigabyte).
const MAX_SPARSE_ARRAY: i64 = 1 << 24;

/// Why a value could not be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvError {
    /// Nested deeper than [`MAX_DEPTH`], or a table that contains itself.
    TooDeep,
    /// The msgpack input is malformed.
    Msgpack(MsgpackError),
}

impl From<MsgpackError> for ConvError {
    fn from(e: MsgpackError) -> Self {
        ConvError::Msgpack(e)
    }
}

impl std::fmt::Display for ConvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConvError::TooDeep => write!(
                f,
                "value nested deeper than {MAX_DEPTH} levels (or a table that contains itself)"
            ),
            ConvError::Msgpack(e) => write!(f, "{e}"),
        }
    }
}

/// What a `type_int_key` / `type_array_key` entry converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleKind {
    Int,
    Array,
}

/// One `type_int_key` / `type_array_key` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub key: Vec<u8>,
    pub kind: RuleKind,
}

/// The identity of a table key (strings are interned, so their data pointer names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyId {
    Str(usize),
    Num(u64),
    Bool(bool),
}

/// A key the script added, to be written in sorted order.
#[derive(Debug, Clone, Copy)]
enum NewKey {
    Num(f64),
    Str(usize, usize),
    Bool(bool),
}

/// Where an entry goes in its map.
#[derive(Debug, Clone, Copy)]
enum Rank {
    /// A key the map came with, at this position.
    Original(u32),
    /// A key the script added, in sorted order.
    Added(NewKey),
    /// A key of another type (a table), in `lua_next` order.
    Exotic(u32),
}

/// One map being written: its entries packed one after the other, with their ranks.
#[derive(Default)]
struct Level {
    bytes: Vec<u8>,
    entries: Vec<(Rank, u32, u32)>,
}

/// Buffers reused from record to record.
#[derive(Default)]
pub(crate) struct ConvBufs {
    /// (table, key, position in the msgpack map the table was made from), in push order;
    /// sorted (stably, so the first of repeated keys comes first) when a map is first packed:
    /// a record the script keeps or drops never pays for the sort.
    positions: Vec<(usize, KeyId, u32)>,
    sorted: bool,
    /// The maps being written, one per nesting depth.
    levels: Vec<Level>,
}

impl ConvBufs {
    /// Forget the tables of the last call.
    pub(crate) fn clear(&mut self) {
        self.positions.clear();
        self.sorted = false;
    }

    /// The position of `key` in the map `table` was made from.
    fn position(&mut self, table: usize, key: KeyId) -> Option<u32> {
        if !self.sorted {
            self.positions.sort_by_key(|&(t, k, _)| (t, k));
            self.sorted = true;
        }
        let i = self
            .positions
            .partition_point(|&(t, k, _)| (t, k) < (table, key));
        match self.positions.get(i) {
            Some(&(t, k, pos)) if t == table && k == key => Some(pos),
            _ => None,
        }
    }
}

/// Stack slots (absolute indices) that hold what every conversion of one call needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots {
    /// The shared metatable of maps.
    pub map_mt: c_int,
    /// The shared metatable of arrays.
    pub array_mt: c_int,
    /// The value pushed for msgpack nil (global `flb_null`, read once per call).
    pub null: c_int,
    /// A table keeping every map made from msgpack alive during the call (nil until the first
    /// one), so no table address is reused while it names key positions.
    pub keep: c_int,
}

/// One call's conversions.
pub(crate) struct Conv<'a, 'r> {
    pub l: *mut lua_State,
    pub slots: Slots,
    pub rules: &'a [Rule],
    pub bufs: &'a mut ConvBufs,
    /// The record being filtered (its top-level keys are the origin of the record table).
    pub record: &'a Record<'r>,
    kept: ffi::lua_Integer,
}

/// `lua_tointeger` as LuaJIT computes it on x86-64 (`cvttsd2si`): truncation, and i64::MIN for
/// NaN and values out of range.
pub(crate) fn trunc_i64(n: f64) -> i64 {
    // [-2^63, 2^63): the doubles an i64 holds.
    let min = i64::MIN as f64;
    if n.is_nan() || !(min..-min).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Fluent Bit's `lua_isinteger`: the number equals its truncation.
pub(crate) fn as_integer(n: f64) -> Option<i64> {
    let i = trunc_i64(n);
    (i as f64 == n).then_some(i)
}

/// msgpack-c's `msgpack_pack_int64`: the smallest encoding, unsigned markers for values ≥ 0.
pub(crate) fn write_int(out: &mut Vec<u8>, d: i64) {
    if d < -(1 << 5) {
        if d < -(1 << 15) {
            if d < -(1 << 31) {
                out.push(0xd3);
                out.extend_from_slice(&d.to_be_bytes());
            } else {
                out.push(0xd2);
                out.extend_from_slice(&(d as i32).to_be_bytes());
            }
        } else if d < -(1 << 7) {
            out.push(0xd1);
            out.extend_from_slice(&(d as i16).to_be_bytes());
        } else {
            out.extend_from_slice(&[0xd0, d as i8 as u8]);
        }
    } else if d < (1 << 7) {
        out.push(d as i8 as u8);
    } else if d < (1 << 16) {
        if d < (1 << 8) {
            out.extend_from_slice(&[0xcc, d as u8]);
        } else {
            out.push(0xcd);
            out.extend_from_slice(&(d as u16).to_be_bytes());
        }
    } else if d < (1 << 32) {
        out.push(0xce);
        out.extend_from_slice(&(d as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&(d as u64).to_be_bytes());
    }
}

/// A Lua number as Fluent Bit packs it.
pub(crate) fn write_number(out: &mut Vec<u8>, n: f64) {
    match as_integer(n) {
        Some(i) => write_int(out, i),
        None => {
            out.push(0xcb);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The bytes of the string at `idx` (which must be a string: numbers would be converted in
/// place). Valid while the string is reachable.
unsafe fn str_at<'s>(l: *mut lua_State, idx: c_int) -> &'s [u8] {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(p as *const u8, len)
}

unsafe fn push_bytes(l: *mut lua_State, s: &[u8]) {
    ffi::lua_pushlstring(l, s.as_ptr() as *const c_char, s.len());
}

impl<'a, 'r> Conv<'a, 'r> {
    pub(crate) fn new(
        l: *mut lua_State,
        slots: Slots,
        rules: &'a [Rule],
        bufs: &'a mut ConvBufs,
        record: &'a Record<'r>,
    ) -> Self {
        Conv {
            l,
            slots,
            rules,
            bufs,
            record,
            kept: 0,
        }
    }

    // -----------------------------------------------------------------------------------------
    // msgpack → Lua

    unsafe fn set_metatable(&self, mt: c_int) {
        ffi::lua_pushvalue(self.l, mt);
        ffi::lua_setmetatable(self.l, -2);
    }

    /// Keep the (new, empty) map table on top alive for the call; returns its address.
    unsafe fn register_map(&mut self) -> usize {
        let l = self.l;
        if ffi::lua_type(l, self.slots.keep) != ffi::LUA_TTABLE {
            ffi::lua_createtable(l, 8, 0);
            ffi::lua_replace(l, self.slots.keep);
        }
        self.kept += 1;
        ffi::lua_pushvalue(l, -1);
        ffi::lua_rawseti_(l, self.slots.keep, self.kept as c_int);
        ffi::lua_topointer(l, -1) as usize
    }

    /// Remember the position of the key on top in the map `table` (below it).
    unsafe fn note_key(&mut self, table: usize, pos: usize) {
        if let Some(id) = self.key_id(-1) {
            self.bufs.positions.push((table, id, pos as u32));
        }
    }

    /// Push the record's top-level map as a table.
    pub(crate) unsafe fn push_record(&mut self) -> Result<(), ConvError> {
        let l = self.l;
        let record = self.record;
        if ffi::lua_checkstack(l, 8) == 0 {
            return Err(ConvError::TooDeep);
        }
        let n = record.len().min(i32::MAX as usize) as c_int;
        ffi::lua_createtable(l, 0, n);
        self.set_metatable(self.slots.map_mt);
        let table = self.register_map();
        for i in 0..record.len() {
            let (k, v) = record.entry(i);
            let kb = record.bytes(k);
            let vb = record.bytes(v);
            self.push_value(&mut Cursor::new(kb), 1)?;
            self.note_key(table, i);
            self.push_value(&mut Cursor::new(vb), 1)?;
            self.set_entry();
        }
        Ok(())
    }

    /// `t[k] = v` for the key and value on top of the table; a nil or NaN key is skipped
    /// (Lua refuses it).
    unsafe fn set_entry(&self) {
        let l = self.l;
        let bad = match ffi::lua_type(l, -2) {
            ffi::LUA_TNIL => true,
            ffi::LUA_TNUMBER => ffi::lua_tonumber(l, -2).is_nan(),
            _ => false,
        };
        if bad {
            ffi::lua_pop(l, 2);
        } else {
            ffi::lua_rawset(l, -3);
        }
    }

    /// Push the msgpack value at the cursor.
    pub(crate) unsafe fn push_value(
        &mut self,
        c: &mut Cursor<'_>,
        depth: usize,
    ) -> Result<(), ConvError> {
        let l = self.l;
        match c.head()? {
            Head::Nil => ffi::lua_pushvalue(l, self.slots.null),
            Head::Bool(b) => ffi::lua_pushboolean(l, c_int::from(b)),
            Head::Uint(u) => ffi::lua_pushnumber(l, u as f64),
            Head::Int(i) => ffi::lua_pushnumber(l, i as f64),
            Head::Float(f) => ffi::lua_pushnumber(l, f),
            Head::Str(s) | Head::Bin(s) | Head::Ext(_, s) => push_bytes(l, s),
            Head::Array(n) => {
                if depth > MAX_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
                    return Err(ConvError::TooDeep);
                }
                c.check_count(n)?;
                ffi::lua_createtable(l, n.min(i32::MAX as usize) as c_int, 0);
                self.set_metatable(self.slots.array_mt);
                for i in 0..n {
                    self.push_value(c, depth + 1)?;
                    ffi::lua_rawseti_(l, -2, (i + 1) as c_int);
                }
            }
            Head::Map(n) => {
                if depth > MAX_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
                    return Err(ConvError::TooDeep);
                }
                c.check_count(n.saturating_mul(2))?;
                ffi::lua_createtable(l, 0, n.min(i32::MAX as usize) as c_int);
                self.set_metatable(self.slots.map_mt);
                let table = self.register_map();
                for i in 0..n {
                    self.push_value(c, depth + 1)?;
                    self.note_key(table, i);
                    self.push_value(c, depth + 1)?;
                    self.set_entry();
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Lua → msgpack

    /// Write the Lua value at absolute index `idx`.
    pub(crate) unsafe fn pack(
        &mut self,
        idx: c_int,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), ConvError> {
        let l = self.l;
        match ffi::lua_type(l, idx) {
            ffi::LUA_TSTRING => write_str(out, str_at(l, idx)),
            ffi::LUA_TNUMBER => write_number(out, ffi::lua_tonumber(l, idx)),
            ffi::LUA_TBOOLEAN => out.push(if ffi::lua_toboolean(l, idx) != 0 {
                0xc3
            } else {
                0xc2
            }),
            ffi::LUA_TTABLE => self.pack_table(idx, out, depth + 1)?,
            // nil, flb_null (a NULL light userdata) and what cannot be serialised.
            _ => out.push(0xc0),
        }
        Ok(())
    }

    /// The metatable `type` of the table at `idx`, when it has one that is a number.
    unsafe fn meta_type(&self, idx: c_int) -> Option<i64> {
        let l = self.l;
        if ffi::lua_getmetatable(l, idx) == 0 {
            return None;
        }
        let mut t = None;
        if ffi::lua_type(l, -1) == ffi::LUA_TTABLE {
            push_bytes(l, b"type");
            ffi::lua_rawget_(l, -2);
            if ffi::lua_type(l, -1) == ffi::LUA_TNUMBER {
                // Fluent Bit stores it in an int.
                t = Some(i64::from(ffi::lua_tointeger_(l, -1) as i32));
            }
            ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        t
    }

    unsafe fn pack_table(
        &mut self,
        idx: c_int,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), ConvError> {
        if depth > MAX_DEPTH || ffi::lua_checkstack(self.l, 8) == 0 {
            return Err(ConvError::TooDeep);
        }
        match self.meta_type(idx) {
            Some(TYPE_ARRAY) => {
                let n = ffi::lua_objlen(self.l, idx);
                self.pack_seq(idx, n, out, depth)
            }
            Some(t) if t >= 0 => self.pack_map(idx, out, depth),
            _ => match self.array_length(idx) {
                n if n > 0 => self.pack_seq(idx, n as usize, out, depth),
                _ => self.pack_map(idx, out, depth),
            },
        }
    }

    /// Fluent Bit's `flb_lua_arraylength`: `table.maxn` when it is a positive integer, else the
    /// number of keys when every key is a positive number and they run 1..n, else -1.
    unsafe fn array_length(&self, idx: c_int) -> i64 {
        let l = self.l;
        // table.maxn: the largest positive numeric key (0 when there is none).
        let mut maxn = 0.0f64;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, idx) != 0 {
            ffi::lua_pop(l, 1);
            if ffi::lua_type(l, -1) == ffi::LUA_TNUMBER {
                let v = ffi::lua_tonumber(l, -1);
                if v > maxn {
                    maxn = v;
                }
            }
        }
        if let Some(n) = as_integer(maxn) {
            // Fluent Bit keeps it in an int.
            let n = i64::from(n as i32);
            if n > 0 && n <= MAX_SPARSE_ARRAY {
                return n;
            }
        }
        let (mut count, mut max) = (0i64, 0i64);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, idx) != 0 {
            if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER {
                let n = trunc_i64(ffi::lua_tonumber(l, -2));
                if n > 0 {
                    max = max.max(n);
                    count += 1;
                    ffi::lua_pop(l, 1);
                    continue;
                }
            }
            ffi::lua_pop(l, 2);
            return -1;
        }
        if max != count {
            -1
        } else {
            max
        }
    }

    /// An array of `t[1..=n]` (holes are nil).
    unsafe fn pack_seq(
        &mut self,
        idx: c_int,
        n: usize,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), ConvError> {
        let n = n.min(i32::MAX as usize);
        write_array_len(out, n);
        for i in 1..=n {
            ffi::lua_rawgeti_(self.l, idx, i as c_int);
            let top = ffi::lua_gettop(self.l);
            let r = self.pack(top, out, depth);
            ffi::lua_pop(self.l, 1);
            r?;
        }
        Ok(())
    }

    /// The identity of the key at `idx`, when it is a string, number or boolean.
    unsafe fn key_id(&self, idx: c_int) -> Option<KeyId> {
        let l = self.l;
        match ffi::lua_type(l, idx) {
            ffi::LUA_TSTRING => Some(KeyId::Str(
                ffi::lua_tolstring(l, idx, std::ptr::null_mut()) as usize
            )),
            ffi::LUA_TNUMBER => Some(num_id(ffi::lua_tonumber(l, idx))),
            ffi::LUA_TBOOLEAN => Some(KeyId::Bool(ffi::lua_toboolean(l, idx) != 0)),
            _ => None,
        }
    }

    /// A map: original keys in their order, then added keys sorted, then exotic keys. One
    /// `lua_next` pass packs every entry into this depth's buffer; the entries are then
    /// copied out in rank order.
    unsafe fn pack_map(
        &mut self,
        idx: c_int,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), ConvError> {
        if self.bufs.levels.len() <= depth {
            self.bufs.levels.resize_with(depth + 1, Default::default);
        }
        let mut level = std::mem::take(&mut self.bufs.levels[depth]);
        level.bytes.clear();
        level.entries.clear();
        let r = self.pack_map_entries(idx, &mut level, depth);
        if r.is_ok() {
            write_map_len(out, level.entries.len());
            let ordered = level
                .entries
                .windows(2)
                .all(|w| cmp_ranks(&w[0].0, &w[1].0).is_le());
            if ordered {
                out.extend_from_slice(&level.bytes);
            } else {
                level.entries.sort_by(|a, b| cmp_ranks(&a.0, &b.0));
                for &(_, s, e) in &level.entries {
                    out.extend_from_slice(&level.bytes[s as usize..e as usize]);
                }
            }
        }
        self.bufs.levels[depth] = level;
        r
    }

    unsafe fn pack_map_entries(
        &mut self,
        idx: c_int,
        level: &mut Level,
        depth: usize,
    ) -> Result<(), ConvError> {
        let l = self.l;
        let table = ffi::lua_topointer(l, idx) as usize;
        let mut exotic = 0u32;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, idx) != 0 {
            let top = ffi::lua_gettop(l);
            let rank = match self.key_id(top - 1) {
                Some(id) => match self.bufs.position(table, id) {
                    Some(pos) => Rank::Original(pos),
                    None => Rank::Added(match id {
                        KeyId::Str(_) => {
                            let s = str_at(l, top - 1);
                            NewKey::Str(s.as_ptr() as usize, s.len())
                        }
                        KeyId::Num(_) => NewKey::Num(ffi::lua_tonumber(l, top - 1)),
                        KeyId::Bool(b) => NewKey::Bool(b),
                    }),
                },
                None => {
                    exotic += 1;
                    Rank::Exotic(exotic)
                }
            };
            let start = level.bytes.len() as u32;
            // On an error the caller's protected call restores the stack.
            self.pack_entry(top - 1, top, &mut level.bytes, depth)?;
            level.entries.push((rank, start, level.bytes.len() as u32));
            ffi::lua_pop(l, 1);
        }
        Ok(())
    }

    /// One map entry, with `type_int_key` / `type_array_key` applied.
    unsafe fn pack_entry(
        &mut self,
        k: c_int,
        v: c_int,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), ConvError> {
        let l = self.l;
        if !self.rules.is_empty() && ffi::lua_type(l, k) == ffi::LUA_TSTRING {
            let vt = ffi::lua_type(l, v);
            let want = match vt {
                ffi::LUA_TNUMBER => Some(RuleKind::Int),
                ffi::LUA_TTABLE => Some(RuleKind::Array),
                _ => None,
            };
            if let Some(want) = want {
                let key = str_at(l, k);
                if self.rules.iter().any(|r| r.kind == want && r.key == key) {
                    write_str(out, key);
                    if want == RuleKind::Int {
                        write_int(out, trunc_i64(ffi::lua_tonumber(l, v)));
                        return Ok(());
                    }
                    if depth + 1 > MAX_DEPTH || ffi::lua_checkstack(l, 8) == 0 {
                        return Err(ConvError::TooDeep);
                    }
                    let n = ffi::lua_objlen(l, v);
                    return self.pack_seq(v, n, out, depth + 1);
                }
            }
        }
        self.pack(k, out, depth)?;
        self.pack(v, out, depth)
    }
}

/// A number key's identity (0.0 and -0.0 are the same key).
fn num_id(n: f64) -> KeyId {
    KeyId::Num(if n == 0.0 { 0 } else { n.to_bits() })
}

fn cmp_new_keys(a: NewKey, b: NewKey) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let rank = |k: &NewKey| match k {
        NewKey::Num(_) => 0,
        NewKey::Str(..) => 1,
        NewKey::Bool(_) => 2,
    };
    match (a, b) {
        (NewKey::Num(x), NewKey::Num(y)) => x.total_cmp(&y),
        (NewKey::Str(p, n), NewKey::Str(q, m)) => {
            // SAFETY: both name strings held as keys of the table being written.
            let (x, y) = unsafe {
                (
                    std::slice::from_raw_parts(p as *const u8, n),
                    std::slice::from_raw_parts(q as *const u8, m),
                )
            };
            x.cmp(y)
        }
        (NewKey::Bool(x), NewKey::Bool(y)) => x.cmp(&y),
        _ => rank(&a).cmp(&rank(&b)).then(Ordering::Equal),
    }
}

fn cmp_ranks(a: &Rank, b: &Rank) -> std::cmp::Ordering {
    let class = |r: &Rank| match r {
        Rank::Original(_) => 0,
        Rank::Added(_) => 1,
        Rank::Exotic(_) => 2,
    };
    match (a, b) {
        (Rank::Original(x), Rank::Original(y)) | (Rank::Exotic(x), Rank::Exotic(y)) => x.cmp(y),
        (Rank::Added(x), Rank::Added(y)) => cmp_new_keys(*x, *y),
        _ => class(a).cmp(&class(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_take_msgpack_c_encodings() {
        let enc = |d: i64| {
            let mut v = Vec::new();
            write_int(&mut v, d);
            v
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0xcc, 0x80]);
        assert_eq!(enc(255), [0xcc, 0xff]);
        assert_eq!(enc(256), [0xcd, 0x01, 0x00]);
        assert_eq!(enc(65_536), [0xce, 0, 1, 0, 0]);
        assert_eq!(enc(1 << 32), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(enc(-1), [0xff]);
        assert_eq!(enc(-32), [0xe0]);
        assert_eq!(enc(-33), [0xd0, 0xdf]);
        assert_eq!(enc(-128), [0xd0, 0x80]);
        assert_eq!(enc(-129), [0xd1, 0xff, 0x7f]);
        assert_eq!(enc(-32_769), [0xd2, 0xff, 0xff, 0x7f, 0xff]);
        assert_eq!(enc(i64::MIN)[0], 0xd3);
    }

    #[test]
    fn numbers_are_integers_when_integral_in_range() {
        assert_eq!(as_integer(2.0), Some(2));
        assert_eq!(as_integer(-0.0), Some(0));
        assert_eq!(as_integer(2.5), None);
        assert_eq!(as_integer(f64::NAN), None);
        assert_eq!(as_integer(f64::INFINITY), None);
        assert_eq!(as_integer(-(i64::MIN as f64)), None);
        assert_eq!(as_integer(i64::MIN as f64), Some(i64::MIN));
        assert_eq!(trunc_i64(-2.7), -2);
        assert_eq!(trunc_i64(f64::NAN), i64::MIN);
    }
}
