//! Connect streaming envelopes: `flags: u8 | length: u32 big-endian | payload`.
//!
//! Flag `0x02` marks the end-of-stream message, whose payload is always JSON (`{}` or
//! `{"error":{…}}`); flag `0x01` marks a compressed payload, which neither end of this code
//! negotiates (both send `Connect-Accept-Encoding: identity`), so it is refused.

use bytes::{Buf, Bytes, BytesMut};
use serde::Serialize;

use super::protocol::{ConnectError, EndOfStream};

/// The payload is compressed.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// The end-of-stream message.
pub const FLAG_END_STREAM: u8 = 0x02;

/// Header size: one flag byte and a four-byte length.
const HEADER: usize = 5;

/// The largest message either end accepts: envd's data events carry at most 32 KiB (base64:
/// ~43 KiB), so anything near this is a broken or hostile peer.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One decoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub flags: u8,
    pub payload: Bytes,
}

impl Envelope {
    pub fn is_end_stream(&self) -> bool {
        self.flags & FLAG_END_STREAM != 0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("a Connect message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("the Connect stream ended inside a message ({missing} bytes missing)")]
    Truncated { missing: usize },
    #[error("the peer sent a compressed Connect message, which was not negotiated")]
    Compressed,
}

/// Frames `payload` with `flags`.
pub fn encode(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&[flags]);
    // Payloads are bounded by MAX_MESSAGE far below u32::MAX; saturate rather than wrap.
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(payload);
    out.freeze()
}

/// Frames a message as JSON.
pub fn encode_json<T: Serialize>(message: &T) -> Result<Bytes, serde_json::Error> {
    Ok(encode(0, &serde_json::to_vec(message)?))
}

/// The end-of-stream envelope: `{}` on success, `{"error":{…}}` otherwise.
pub fn end_of_stream(error: Option<ConnectError>) -> Bytes {
    let payload = serde_json::to_vec(&EndOfStream { error }).unwrap_or_else(|_| b"{}".to_vec());
    encode(FLAG_END_STREAM, &payload)
}

/// Splits a byte stream, fed in chunks of any size, into envelopes.
#[derive(Debug)]
pub struct EnvelopeDecoder {
    buffer: BytesMut,
    max: usize,
}

impl Default for EnvelopeDecoder {
    fn default() -> Self {
        Self::new(MAX_MESSAGE)
    }
}

impl EnvelopeDecoder {
    /// A decoder refusing messages larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        EnvelopeDecoder { buffer: BytesMut::new(), max }
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next complete envelope, if the buffer holds one.
    pub fn next_envelope(&mut self) -> Result<Option<Envelope>, EnvelopeError> {
        if self.buffer.len() < HEADER {
            return Ok(None);
        }
        let flags = self.buffer[0];
        let len = u32::from_be_bytes([self.buffer[1], self.buffer[2], self.buffer[3], self.buffer[4]]) as usize;
        if len > self.max {
            return Err(EnvelopeError::TooLarge { len, max: self.max });
        }
        if flags & FLAG_COMPRESSED != 0 {
            return Err(EnvelopeError::Compressed);
        }
        if self.buffer.len() < HEADER + len {
            return Ok(None);
        }
        self.buffer.advance(HEADER);
        let payload = self.buffer.split_to(len).freeze();
        Ok(Some(Envelope { flags, payload }))
    }

    /// Checks that the stream did not stop inside a message.
    pub fn finish(&self) -> Result<(), EnvelopeError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let missing = if self.buffer.len() < HEADER {
            HEADER - self.buffer.len()
        } else {
            let len = u32::from_be_bytes([self.buffer[1], self.buffer[2], self.buffer[3], self.buffer[4]]) as usize;
            HEADER + len - self.buffer.len()
        };
        Err(EnvelopeError::Truncated { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2b::protocol::{Code, ProcessConfig, ProcessEvent, StartRequest, StartResponse};

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn request_envelope_is_byte_exact() {
        let request = StartRequest {
            process: ProcessConfig {
                cmd: "/bin/sh".into(),
                args: vec!["-c".into(), "echo hi".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let mut expected = hex("00 00 00 00 35");
        expected.extend_from_slice(br#"{"process":{"cmd":"/bin/sh","args":["-c","echo hi"]}}"#);
        assert_eq!(encode_json(&request).unwrap().as_ref(), expected.as_slice());
    }

    #[test]
    fn end_of_stream_is_byte_exact() {
        assert_eq!(end_of_stream(None).as_ref(), hex("02 00 00 00 02 7b 7d").as_slice());
        let failed = end_of_stream(Some(ConnectError::new(Code::InvalidArgument, "cwd 'x' does not exist")));
        assert_eq!(&failed[5..], br#"{"error":{"code":"invalid_argument","message":"cwd 'x' does not exist"}}"#);
    }

    #[test]
    fn decoder_reassembles_a_stream_fed_byte_by_byte() {
        let mut wire = Vec::new();
        for text in [
            r#"{"event":{"start":{"pid":42}}}"#,
            r#"{"event":{"data":{"stdout":"aGkK"}}}"#,
            r#"{"event":{"end":{"exitCode":3,"exited":true,"status":"exit status 3","error":"exit status 3"}}}"#,
        ] {
            wire.extend_from_slice(&encode(0, text.as_bytes()));
        }
        wire.extend_from_slice(&hex("02 00 00 00 02 7b 7d"));
        let mut decoder = EnvelopeDecoder::default();
        let mut got = Vec::new();
        for byte in wire {
            decoder.push(&[byte]);
            while let Some(envelope) = decoder.next_envelope().unwrap() {
                got.push(envelope);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(got.len(), 4);
        let first: StartResponse = serde_json::from_slice(&got[0].payload).unwrap();
        assert!(matches!(first.event, ProcessEvent::Start(s) if s.pid == 42));
        assert!(got[3].is_end_stream());
        assert_eq!(got[3].payload.as_ref(), b"{}");
        assert!(!got[2].is_end_stream());
    }

    #[test]
    fn decoder_refuses_oversized_compressed_and_truncated_input() {
        let mut decoder = EnvelopeDecoder::new(10);
        decoder.push(&hex("00 00 00 00 0b"));
        assert_eq!(decoder.next_envelope(), Err(EnvelopeError::TooLarge { len: 11, max: 10 }));

        let mut decoder = EnvelopeDecoder::default();
        decoder.push(&hex("01 00 00 00 01 00"));
        assert_eq!(decoder.next_envelope(), Err(EnvelopeError::Compressed));

        let mut decoder = EnvelopeDecoder::default();
        decoder.push(&hex("00 00 00 00 04 7b"));
        assert_eq!(decoder.next_envelope(), Ok(None));
        assert_eq!(decoder.finish(), Err(EnvelopeError::Truncated { missing: 3 }));
    }
}
