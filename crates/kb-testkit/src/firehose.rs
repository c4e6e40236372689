//! Small SigV4-signing Firehose and S3 clients for tests against moto, whose Firehose delivers
//! each PutRecordBatch to its S3 mock as one object holding the records' Data one after another.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_credential_types::Credentials;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::kds::{SignedHttp, TEST_ACCESS_KEY_ID, TEST_SECRET};

/// Test client for the Firehose JSON API (`Firehose_20150804.*`).
#[derive(Clone)]
pub struct FirehoseClient {
    http: SignedHttp,
}

fn creds(akid: &str, secret: &str) -> Credentials {
    Credentials::new(akid, secret, None, None, "kb-testkit")
}

impl FirehoseClient {
    /// With the default test credentials.
    pub fn new(endpoint: &str, region: &str) -> Self {
        Self::with_credentials(endpoint, region, TEST_ACCESS_KEY_ID, TEST_SECRET)
    }

    pub fn with_credentials(endpoint: &str, region: &str, akid: &str, secret: &str) -> Self {
        FirehoseClient {
            http: SignedHttp::new(endpoint, region, "firehose", creds(akid, secret)),
        }
    }

    /// Calls `Firehose_20150804.<target>`; the status and the JSON body (`Value::String` when
    /// it is not JSON).
    pub async fn call(&self, target: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_string()),
            ("x-amz-target", format!("Firehose_20150804.{target}")),
        ];
        let (status, _, raw) = self
            .http
            .request("POST", "/", &headers, Bytes::from(body.to_string()))
            .await?;
        let v = serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()));
        Ok((status, v))
    }

    /// CreateDeliveryStream (DirectPut) delivering to the S3 bucket `bucket`.
    pub async fn create_delivery_stream(&self, name: &str, bucket: &str) -> anyhow::Result<()> {
        let (st, v) = self
            .call(
                "CreateDeliveryStream",
                json!({
                    "DeliveryStreamName": name,
                    "DeliveryStreamType": "DirectPut",
                    "S3DestinationConfiguration": {
                        "RoleARN": "arn:aws:iam::123456789012:role/firehose-to-s3",
                        "BucketARN": format!("arn:aws:s3:::{bucket}"),
                    },
                }),
            )
            .await?;
        if st != 200 {
            bail!("CreateDeliveryStream answered {st}: {v}");
        }
        Ok(())
    }
}

/// Test client for S3 (path-style, as moto serves it on one port).
#[derive(Clone)]
pub struct S3Client {
    http: SignedHttp,
}

impl S3Client {
    pub fn new(endpoint: &str, region: &str) -> Self {
        Self::with_credentials(endpoint, region, TEST_ACCESS_KEY_ID, TEST_SECRET)
    }

    pub fn with_credentials(endpoint: &str, region: &str, akid: &str, secret: &str) -> Self {
        S3Client {
            http: SignedHttp::new(endpoint, region, "s3", creds(akid, secret)),
        }
    }

    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let (st, _, body) = self
            .http
            .request("PUT", &format!("/{bucket}"), &[], Bytes::new())
            .await?;
        if st != 200 {
            bail!(
                "CreateBucket answered {st}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// The keys of every object in `bucket` (up to 1000), sorted.
    pub async fn keys(&self, bucket: &str) -> anyhow::Result<Vec<String>> {
        let (st, _, body) = self
            .http
            .request("GET", &format!("/{bucket}?list-type=2"), &[], Bytes::new())
            .await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if st != 200 {
            bail!("ListObjectsV2 answered {st}: {text}");
        }
        let mut keys = Vec::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("<Key>") {
            rest = &rest[i + 5..];
            let end = rest.find("</Key>").context("unterminated <Key>")?;
            keys.push(rest[..end].to_string());
            rest = &rest[end..];
        }
        keys.sort();
        Ok(keys)
    }

    pub async fn get(&self, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
        let (st, _, body) = self
            .http
            .request("GET", &format!("/{bucket}/{key}"), &[], Bytes::new())
            .await?;
        if st != 200 {
            bail!(
                "GetObject {key} answered {st}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body.to_vec())
    }

    /// Every object of `bucket`, concatenated in key order (each PutRecordBatch is one object,
    /// and the keys carry the time, so this is delivery order to the second).
    pub async fn all_data(&self, bucket: &str) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for k in self.keys(bucket).await? {
            out.push(self.get(bucket, &k).await?);
        }
        Ok(out)
    }

    /// Waits until the objects of `bucket` hold `n` newline-terminated records (10 s max);
    /// returns the records.
    pub async fn wait_for_lines(&self, bucket: &str, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = split_lines(&self.all_data(bucket).await?.concat());
            if lines.len() >= n || Instant::now() > deadline {
                return Ok(lines);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The newline-terminated records of `data` (each with its newline).
pub fn split_lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}
