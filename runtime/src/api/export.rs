//! Downloads: an execution's log lines as CSV, and its steps' stdout and stderr ("OS
//! logs") as a ZIP with a README saying what was and was not captured.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, Caller, Service, execution_id, step_runs_of};
use crate::store::{self, StepRunRow};

/// A file download.
pub(super) fn download(content_type: &'static str, file: &str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub(super) fn logs_csv(rows: &[store::LogRow]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "ts",
        "level",
        "execution_id",
        "node",
        "iteration",
        "attempt",
        "message",
        "fields",
    ])?;
    for row in rows {
        let fields = row
            .fields
            .as_ref()
            .map(|fields| json!(fields).to_string())
            .unwrap_or_default();
        writer.write_record([
            row.ts.as_str(),
            row.level.as_str(),
            row.execution_id.as_str(),
            row.node.as_str(),
            &row.iteration.map(|i| i.to_string()).unwrap_or_default(),
            &row.attempt.to_string(),
            row.message.as_str(),
            &fields,
        ])?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// `GET /api/v1/executions/{id}/oslogs.zip`: each step run's stdout and stderr (its
/// "OS logs") as files in a ZIP, with a README saying what was and was not captured.
pub(super) async fn execution_os_logs(
    State(service): State<Arc<Service>>,
    Extension(caller): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = execution_id(&service, &caller, &id).await?;
    let steps = step_runs_of(&service, &id, None).await?;
    let zip = os_logs_zip(&id, &steps).map_err(ApiError::internal)?;
    Ok(download(
        "application/zip",
        &format!("{id}-oslogs.zip"),
        zip,
    ))
}

fn os_logs_zip(id: &str, steps: &[StepRunRow]) -> Result<Vec<u8>, zip::result::ZipError> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut readme = format!("OS logs (stdout and stderr) of the steps of execution {id}.\n\n");
    for StepRunRow { run: step, .. } in steps {
        let mut name = step.node.clone();
        if let Some(iteration) = step.iteration {
            name.push_str(&format!("-iteration{iteration}"));
        }
        name.push_str(&format!("-attempt{}", step.attempt));
        if !step.capture.data {
            readme.push_str(&format!(
                "{name}: not captured: OS logs are kept only when the execution runs at DEBUG \
                 or TRACE\n"
            ));
            continue;
        }
        for (stream, text) in [
            ("stdout", &step.report.stdout),
            ("stderr", &step.report.stderr),
        ] {
            zip.start_file(format!("{name}.{stream}.txt"), options)?;
            zip.write_all(text.as_bytes())?;
            let truncated = step.capture.truncated.contains(&stream);
            readme.push_str(&format!(
                "{name}.{stream}.txt: {} bytes{}\n",
                text.len(),
                if truncated {
                    ", cut at the capture cap"
                } else {
                    ""
                }
            ));
        }
    }
    zip.start_file("README.txt", options)?;
    zip.write_all(readme.as_bytes())?;
    Ok(zip.finish()?.into_inner())
}
