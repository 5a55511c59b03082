//! A bounds-checked little-endian reader over the bytes of a GGUF file.
//!
//! Every read checks the bytes that remain before touching them, and [`Cursor::check_count`]
//! rejects an element count that the rest of the file cannot hold before anything is allocated
//! for it, so a hostile header gives an error instead of an out-of-memory abort.

/// A read position in a byte slice. Errors are plain messages; the caller adds the file path.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at byte 0 of `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// The current byte offset from the start of the file.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The next `n` bytes; `what` names the field for the error message.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "file truncated: {what} needs {n} bytes at offset {}, only {} remain",
                self.pos,
                self.remaining()
            ));
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn i8(&mut self, what: &str) -> Result<i8, String> {
        Ok(i8::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i16(&mut self, what: &str) -> Result<i16, String> {
        Ok(i16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f32(&mut self, what: &str) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f64(&mut self, what: &str) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: a u64 byte length, then that many bytes (not NUL-terminated).
    pub(crate) fn string_bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return Err(format!(
                "{what} at offset {at} claims {len} bytes, only {} remain in the file",
                self.remaining()
            ));
        }
        self.take(len as usize, what)
    }

    /// A GGUF string that must be valid UTF-8 (keys and tensor names).
    pub(crate) fn string(&mut self, what: &str) -> Result<&'a str, String> {
        let at = self.pos;
        let bytes = self.string_bytes(what)?;
        std::str::from_utf8(bytes).map_err(|e| format!("{what} at offset {at} is not utf-8: {e}"))
    }

    /// Checks that `count` elements of at least `min_elem_bytes` each can fit in the rest of the
    /// file, and returns the count as `usize`.
    pub(crate) fn check_count(
        &self,
        count: u64,
        min_elem_bytes: usize,
        what: &str,
    ) -> Result<usize, String> {
        let need = count.checked_mul(min_elem_bytes as u64);
        match need {
            Some(need) if need <= self.remaining() as u64 => Ok(count as usize),
            _ => Err(format!(
                "{what} of {count} (at least {min_elem_bytes} bytes each) does not fit in the {} \
                 bytes left after offset {}",
                self.remaining(),
                self.pos
            )),
        }
    }
}
