//! CSV: one row per (cell, quantity) with every column of [`COLUMNS`], full precision.

use super::{COLUMNS, Exporter, values};
use crate::analysis::Report;

/// The CSV exporter.
pub struct Csv;

impl Exporter for Csv {
    fn serialize(&self, report: &Report) -> Vec<u8> {
        let mut writer = ::csv::Writer::from_writer(Vec::new());
        let write =
            |w: &mut ::csv::Writer<Vec<u8>>, record: Vec<String>| w.write_record(record).expect("writing to memory");
        write(&mut writer, COLUMNS.iter().map(|c| c.to_string()).collect());
        for row in &report.rows {
            write(
                &mut writer,
                values(row, &report.method).iter().map(|v| v.plain()).collect(),
            );
        }
        writer.into_inner().expect("writing to memory")
    }
}
