//! JSON lines <-> Arrow. Decoding isolates bad lines: a line that does not
//! parse or does not fit the schema is reported with its reason and the rest
//! of the batch is decoded. A batch goes through the schema-driven scanner
//! (`json_scan`) first; a batch it does not decide alone (a bad line, a shape
//! it does not convert) is decoded by arrow-json, which stays the reference.

use super::BatchError;
use super::json_scan::Scanner;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use std::sync::Arc;

/// A line that could not be decoded, with its index in the input slice.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedLine {
    /// Index of the line among the lines given to [`JsonDecoder::decode_lines`].
    pub index: usize,
    /// Why it was rejected.
    pub reason: String,
}

/// The outcome of decoding a group of lines.
#[derive(Debug)]
pub struct DecodedLines {
    /// The good lines as one batch (in input order).
    pub batch: RecordBatch,
    /// Input index of each row of `batch`.
    pub line_of_row: Vec<usize>,
    /// Lines that failed, with reasons.
    pub rejected: Vec<RejectedLine>,
}

/// Decodes JSON objects (one per line / record) into batches of a fixed schema.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    /// The schema every record must fit.
    schema: SchemaRef,
    /// The columns the batches keep, when not all (see [`JsonDecoder::checking`]).
    kept: Option<Arc<[usize]>>,
    pub(super) scanner: Option<Arc<Scanner>>,
}

impl JsonDecoder {
    /// A decoder producing batches of `schema`: the scanner, with arrow-json
    /// for the batches the scanner leaves to it.
    pub fn new(schema: SchemaRef) -> Self {
        JsonDecoder::arrow_json(schema).with_scanner()
    }

    /// A decoder that checks every record against the whole `schema`
    /// (a record that does not fit it is rejected, exactly as by
    /// [`JsonDecoder::new`]) but builds only the columns `kept` (ascending
    /// field indices): the batches are `schema.project(kept)`. The scanner
    /// parses the other fields without building them; a batch it leaves to
    /// arrow-json is decoded whole and then projected.
    pub fn checking(schema: SchemaRef, kept: &[usize]) -> Result<Self, BatchError> {
        schema.project(kept)?;
        Ok(JsonDecoder { schema, kept: Some(kept.into()), scanner: None }.with_scanner())
    }

    fn with_scanner(mut self) -> Self {
        // A schema arrow-json refuses (e.g. an unknown time zone) fails every
        // batch as before: the scanner is only a faster way to the same result.
        if self.decoder(1).is_ok() {
            self.scanner = Scanner::new(&self.schema, self.kept.as_deref()).map(Arc::new);
        }
        self
    }

    /// A decoder that uses arrow-json alone (the reference the scanner is
    /// tested and benchmarked against).
    pub fn arrow_json(schema: SchemaRef) -> Self {
        JsonDecoder { schema, kept: None, scanner: None }
    }

    /// The schema records are checked against (the batches hold all of its
    /// columns, or those of [`JsonDecoder::checking`]).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn decoder(&self, rows: usize) -> Result<arrow_json::reader::Decoder, BatchError> {
        arrow_json::ReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows.max(1))
            .build_decoder()
            .map_err(|e| BatchError::Json(e.to_string()))
    }

    /// Decodes `lines` (each one JSON object). Fastest path: the scanner,
    /// when it decides every line. Then arrow-json: one decoder fed line by line, checking that every line ends exactly one record (so
    /// two broken lines can never merge into one record); on any failure each
    /// line is checked alone so only the bad ones are rejected.
    pub fn decode_lines(&self, lines: &[&[u8]]) -> Result<DecodedLines, BatchError> {
        if let Some(batch) = self.scanner.as_ref().and_then(|scanner| scanner.decode(lines)) {
            return Ok(DecodedLines { batch, line_of_row: (0..lines.len()).collect(), rejected: Vec::new() });
        }
        let mut decoded = match self.decode_aligned(lines)? {
            Some(batch) => DecodedLines { batch, line_of_row: (0..lines.len()).collect(), rejected: Vec::new() },
            None => self.decode_isolating(lines)?,
        };
        if let Some(kept) = &self.kept {
            decoded.batch = decoded.batch.project(kept)?;
        }
        Ok(decoded)
    }

    fn decode_aligned(&self, lines: &[&[u8]]) -> Result<Option<RecordBatch>, BatchError> {
        let mut decoder = self.decoder(lines.len())?;
        for (index, line) in lines.iter().enumerate() {
            match decoder.decode(line) {
                Ok(read) if read == line.len() => {}
                _ => return Ok(None),
            }
            if decoder.has_partial_record() || decoder.len() != index + 1 {
                return Ok(None);
            }
        }
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == lines.len() => Ok(Some(batch)),
            Ok(None) if lines.is_empty() => Ok(Some(RecordBatch::new_empty(self.schema.clone()))),
            _ => Ok(None),
        }
    }

    fn decode_all(&self, bytes: &[u8], rows: usize) -> Result<RecordBatch, BatchError> {
        let mut decoder = self.decoder(rows)?;
        let mut offset = 0;
        while offset < bytes.len() {
            let read = decoder.decode(&bytes[offset..]).map_err(|e| BatchError::Json(e.to_string()))?;
            if read == 0 {
                break;
            }
            offset += read;
        }
        let batch = decoder.flush().map_err(|e| BatchError::Json(e.to_string()))?;
        Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone())))
    }

    fn decode_isolating(&self, lines: &[&[u8]]) -> Result<DecodedLines, BatchError> {
        let mut good = Vec::new();
        let mut line_of_row = Vec::new();
        let mut rejected = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            match self.check_line(line) {
                Ok(()) => {
                    good.extend_from_slice(line);
                    good.push(b'\n');
                    line_of_row.push(index);
                }
                Err(reason) => rejected.push(RejectedLine { index, reason }),
            }
        }
        let batch = self.decode_all(&good, line_of_row.len())?;
        Ok(DecodedLines { batch, line_of_row, rejected })
    }

    fn check_line(&self, line: &[u8]) -> Result<(), String> {
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| format!("malformed JSON: {e}"))?;
        if !value.is_object() {
            return Err("not a JSON object".into());
        }
        let mut decoder = self.decoder(1).map_err(|e| e.to_string())?;
        decoder.decode(line).map_err(|e| format!("does not fit the schema: {e}"))?;
        match decoder.flush() {
            Ok(Some(batch)) if batch.num_rows() == 1 => Ok(()),
            Ok(_) => Err("empty record".into()),
            Err(e) => Err(format!("does not fit the schema: {e}")),
        }
    }
}

/// Writes a batch as JSON lines (nulls written explicitly).
pub fn write_json_lines(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), BatchError> {
    let mut writer = arrow_json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow_json::writer::LineDelimited>(out);
    writer.write(batch).map_err(|e| BatchError::Json(e.to_string()))?;
    writer.finish().map_err(|e| BatchError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::SchemaSpec;
    use arrow_array::{Array, Float64Array};

    fn decoder() -> JsonDecoder {
        let spec = SchemaSpec::from_json(
            r#"{"fields":[{"name":"id","type":"utf8","nullable":false},{"name":"amount","type":"float64"}]}"#,
        )
        .unwrap();
        JsonDecoder::new(spec.to_arrow().unwrap())
    }

    #[test]
    fn bad_lines_are_isolated_and_the_rest_decoded() {
        let lines: Vec<&[u8]> = vec![
            br#"{"id":"a","amount":1.5}"#,
            br#"{"id":"b","amount":"#,
            br#"{"id":"c","amount":"not a number"}"#,
            br#"{"amount":3}"#,
            br#"[1,2]"#,
            br#"{"id":"d"}"#,
        ];
        let decoded = decoder().decode_lines(&lines).unwrap();
        assert_eq!(decoded.line_of_row, vec![0, 5]);
        let rejected: Vec<usize> = decoded.rejected.iter().map(|r| r.index).collect();
        assert_eq!(rejected, vec![1, 2, 3, 4]);
        assert!(decoded.rejected[0].reason.starts_with("malformed JSON"), "{:?}", decoded.rejected[0]);
        let amounts = decoded.batch.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(amounts.value(0), 1.5);
        assert!(amounts.is_null(1));
    }

    #[test]
    fn broken_lines_never_merge_into_one_record() {
        let lines: Vec<&[u8]> = vec![br#"{"id":"a","amount":1}{"id":"b","amount":"#, br#"2}"#, br#"{"id":"c"}"#];
        let decoded = decoder().decode_lines(&lines).unwrap();
        assert_eq!(decoded.line_of_row, vec![2]);
        assert_eq!(decoded.rejected.len(), 2);
    }

    #[test]
    fn json_lines_round_trip() {
        let lines: Vec<&[u8]> = vec![br#"{"id":"a","amount":1.5}"#, br#"{"id":"b","amount":null}"#];
        let decoded = decoder().decode_lines(&lines).unwrap();
        let mut out = Vec::new();
        write_json_lines(&decoded.batch, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"id\":\"a\",\"amount\":1.5}\n{\"id\":\"b\",\"amount\":null}\n");
    }
}
