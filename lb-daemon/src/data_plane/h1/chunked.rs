//! Where a chunked response body ends (RFC 9112 §7.1): the lean path relays the
//! chunks as they are and only needs to know when the last one, its trailer fields
//! and the final CRLF have gone by, to reuse the connection exactly then.

/// Follows a chunked body (RFC 9112 §7.1) byte by byte, without decoding it, to
/// find where it ends: after the last chunk, its trailer fields and the final CRLF.
#[derive(Debug, Default, Clone)]
pub struct Chunked {
    state: ChunkState,
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// A chunked body that breaks the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct BadChunk;

impl Chunked {
    /// Feeds the next bytes of the body. `Ok(Some(n))`: the body ended after the
    /// first `n` of them; `Ok(None)`: it goes on.
    ///
    /// # Errors
    /// [`BadChunk`] when the bytes break the chunked grammar (a chunk size of more
    /// than 16 hex digits included).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunk> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                ChunkState::Data => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::Size => match (b as char).to_digit(16) {
                    Some(d) if self.digits < 16 => {
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                    }
                    None if self.digits > 0 && matches!(b, b';' | b' ' | b'\t') => {
                        self.state = ChunkState::Extension;
                    }
                    None if self.digits > 0 && b == b'\r' => self.state = ChunkState::SizeLf,
                    _ => return Err(BadChunk),
                },
                ChunkState::Extension => match b {
                    b'\r' => self.state = ChunkState::SizeLf,
                    b'\n' | 0..=8 | 10..=31 | 127 => return Err(BadChunk),
                    _ => {}
                },
                ChunkState::SizeLf => {
                    self.expect(b, b'\n')?;
                    self.digits = 0;
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::DataCr => {
                    self.expect(b, b'\r')?;
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    self.expect(b, b'\n')?;
                    self.state = ChunkState::Size;
                }
                ChunkState::TrailerStart if b == b'\r' => self.state = ChunkState::EndLf,
                ChunkState::TrailerStart | ChunkState::TrailerLine => match b {
                    b'\r' => self.state = ChunkState::TrailerLf,
                    b'\n' | 0..=8 | 10..=31 | 127 => return Err(BadChunk),
                    _ => self.state = ChunkState::TrailerLine,
                },
                ChunkState::TrailerLf => {
                    self.expect(b, b'\n')?;
                    self.state = ChunkState::TrailerStart;
                }
                ChunkState::EndLf => {
                    self.expect(b, b'\n')?;
                    self.state = ChunkState::Done;
                    return Ok(Some(i + 1));
                }
                ChunkState::Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok((self.state == ChunkState::Done).then_some(i))
    }

    fn expect(&self, got: u8, want: u8) -> Result<(), BadChunk> {
        if got == want { Ok(()) } else { Err(BadChunk) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_the_grammar_says() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        let end = body.len() - 4;
        assert_eq!(Chunked::default().feed(body), Ok(Some(end)));
        // The same bytes one at a time.
        let mut tracker = Chunked::default();
        for (i, b) in body.iter().enumerate() {
            match tracker.feed(std::slice::from_ref(b)) {
                Ok(None) => assert!(i + 1 < end),
                Ok(Some(1)) => {
                    assert_eq!(i + 1, end);
                    break;
                }
                other => panic!("byte {i}: {other:?}"),
            }
        }
        assert_eq!(Chunked::default().feed(b"0\r\n\r\n"), Ok(Some(5)));
        assert_eq!(Chunked::default().feed(b"3\r\nab"), Ok(None));
        for bad in [
            &b"x\r\n"[..],
            b"3\r\nabcd\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"3\nabc",
        ] {
            assert_eq!(Chunked::default().feed(bad), Err(BadChunk), "{bad:?}");
        }
    }
}
