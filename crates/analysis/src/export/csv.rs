//! CSV: the long table, one row per line, full precision.

use super::Exporter;
use super::table::Table;

/// The CSV exporter.
pub struct Csv;

impl Exporter for Csv {
    fn serialize(&self, table: &Table) -> Vec<u8> {
        let mut writer = ::csv::Writer::from_writer(Vec::new());
        writer.write_record(&table.columns).expect("writing to memory");
        for row in &table.rows {
            writer
                .write_record(row.iter().map(|v| v.plain()))
                .expect("writing to memory");
        }
        writer.into_inner().expect("writing to memory")
    }
}
