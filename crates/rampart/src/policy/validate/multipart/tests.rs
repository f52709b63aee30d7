use super::*;

const CONTENT_TYPE_HEADER: &str = "multipart/form-data; boundary=XyZ";

/// One part as written on the wire: its header lines and its data.
struct Raw<'a> {
    headers: Vec<String>,
    data: &'a [u8],
}

fn field(name: &str, data: &'static [u8]) -> Raw<'static> {
    Raw {
        headers: vec![format!("Content-Disposition: form-data; name=\"{name}\"")],
        data,
    }
}

fn file<'a>(name: &str, filename: &str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        headers: vec![
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\""),
            "Content-Type: application/octet-stream".to_owned(),
        ],
        data,
    }
}

fn with_disposition(disposition: &str) -> Raw<'static> {
    Raw {
        headers: vec![format!("Content-Disposition: {disposition}")],
        data: b"x",
    }
}

fn body(parts: &[Raw<'_>]) -> Bytes {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(b"--XyZ\r\n");
        for header in &part.headers {
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--XyZ--\r\n");
    Bytes::from(out)
}

async fn run(parts: &[Raw<'_>]) -> Result<Vec<Part>, Violation> {
    parse(
        body(parts),
        CONTENT_TYPE_HEADER,
        &MultipartLimits::default(),
    )
    .await
}

async fn refusal(parts: &[Raw<'_>]) -> Option<Violation> {
    run(parts).await.err()
}

#[tokio::test]
async fn a_valid_upload_with_a_field_and_a_file_is_split_into_parts() {
    let parts = run(&[
        field("title", b"Holiday"),
        file("photo", "beach 2024.jpg", b"\xff\xd8jpeg"),
    ])
    .await;
    assert_eq!(
        parts,
        Ok(vec![
            Part {
                name: "title".into(),
                filename: None,
                content_type: None,
                data: Bytes::from_static(b"Holiday"),
            },
            Part {
                name: "photo".into(),
                filename: Some("beach 2024.jpg".into()),
                content_type: Some("application/octet-stream".into()),
                data: Bytes::from_static(b"\xff\xd8jpeg"),
            },
        ])
    );
}

#[tokio::test]
async fn a_part_count_flood_is_refused() {
    let flood: Vec<_> = (0..33).map(|_| field("f", b"1")).collect();
    assert_eq!(
        refusal(&flood).await,
        Some(Violation::new("/body", "more than 32 parts"))
    );
    assert!(run(&flood[..32]).await.is_ok());
}

#[tokio::test]
async fn an_oversized_file_part_is_refused() {
    let big = vec![b'a'; 1024 * 1024 + 1];
    assert_eq!(
        refusal(&[file("upload", "big.bin", &big)]).await,
        Some(Violation::new(
            "/body/upload",
            "a part larger than 1048576 bytes"
        ))
    );
    assert!(run(&[file("upload", "big.bin", &big[1..])]).await.is_ok());
}

#[tokio::test]
async fn a_field_part_has_the_smaller_limit() {
    let data = vec![b'a'; 64 * 1024 + 1];
    let part = Raw {
        headers: vec!["Content-Disposition: form-data; name=\"comment\"".to_owned()],
        data: &data,
    };
    assert_eq!(
        refusal(&[part]).await,
        Some(Violation::new(
            "/body/comment",
            "a part larger than 65536 bytes"
        ))
    );
    // The same bytes as a file part are within the file limit.
    assert!(run(&[file("comment", "c.txt", &data)]).await.is_ok());
}

#[tokio::test]
async fn a_path_traversal_file_name_is_refused() {
    assert_eq!(
        refusal(&[file("upload", "../../etc/passwd", b"x")]).await,
        Some(Violation::new("/body/upload", "file name is not allowed"))
    );
}

#[tokio::test]
async fn a_windows_path_file_name_is_refused() {
    assert!(!file_name_is_allowed("C:\\evil.exe"));
    assert!(!file_name_is_allowed("C:evil.exe"));
    assert!(!file_name_is_allowed("..\\..\\evil.exe"));
    // On the wire: quoted with its backslash, or unquoted.
    assert!(
        refusal(&[file("upload", "C:\\evil.exe", b"x")])
            .await
            .is_some()
    );
    let unquoted = with_disposition("form-data; name=upload; filename=C:\\evil.exe");
    assert!(refusal(&[unquoted]).await.is_some());
}

#[tokio::test]
async fn a_nul_in_a_file_name_is_refused_raw_or_percent_encoded() {
    assert!(!file_name_is_allowed("shell.php\0.jpg"));
    assert_eq!(
        refusal(&[file("upload", "shell.php%00.jpg", b"x")]).await,
        Some(Violation::new("/body/upload", "file name is not allowed"))
    );
    let raw_nul = Raw {
        headers: vec!["Content-Disposition: form-data; name=\"u\"; filename=\"a\0.jpg\"".into()],
        data: b"x",
    };
    assert!(refusal(&[raw_nul]).await.is_some());
}

#[tokio::test]
async fn a_percent_encoded_traversal_is_refused() {
    assert!(
        refusal(&[file("upload", "..%2F..%2Fetc%2Fpasswd", b"x")])
            .await
            .is_some()
    );
    assert!(
        refusal(&[file("upload", "%2e%2e%2fx", b"x")])
            .await
            .is_some()
    );
}

#[test]
fn hidden_disguised_and_overlong_file_names_are_refused() {
    assert!(!file_name_is_allowed(".htaccess"));
    assert!(!file_name_is_allowed("evil.exe."));
    assert!(!file_name_is_allowed("evil.exe "));
    assert!(!file_name_is_allowed("invoice\u{202E}fdp.exe"));
    assert!(!file_name_is_allowed("line\r\nbreak.txt"));
    assert!(!file_name_is_allowed(&"a".repeat(256)));
    assert!(file_name_is_allowed(&"a".repeat(255)));
}

#[test]
fn ordinary_file_names_are_allowed() {
    for name in [
        "report.pdf",
        "Résumé 2024.pdf",
        "photo_01-final.JPG",
        "100% done.txt",
        "",
        "a",
    ] {
        assert!(file_name_is_allowed(name), "{name} was refused");
    }
}

#[tokio::test]
async fn a_file_name_in_another_case_is_still_checked() {
    let upper = with_disposition("form-data; name=\"u\"; FILENAME=\"../x\"");
    assert_eq!(
        refusal(&[upper]).await,
        Some(Violation::new("/body/u", "file name is not allowed"))
    );
}

#[tokio::test]
async fn an_extended_file_name_parameter_is_refused() {
    let extended = with_disposition("form-data; name=\"u\"; filename*=UTF-8''..%2F..%2Fx");
    assert!(
        refusal(&[extended])
            .await
            .is_some_and(|v| v.reason.contains("extended"))
    );
}

#[tokio::test]
async fn a_duplicated_parameter_is_refused() {
    let twice = with_disposition("form-data; name=\"u\"; filename=\"a.txt\"; filename=\"../b\"");
    assert!(
        refusal(&[twice])
            .await
            .is_some_and(|v| v.reason.contains("twice"))
    );
    let two_headers = Raw {
        headers: vec![
            "Content-Disposition: form-data; name=\"a\"".into(),
            "Content-Disposition: form-data; name=\"b\"".into(),
        ],
        data: b"x",
    };
    assert!(refusal(&[two_headers]).await.is_some());
}

#[tokio::test]
async fn a_part_without_a_name_or_disposition_is_refused() {
    assert!(
        refusal(&[with_disposition("form-data; filename=\"a.txt\"")])
            .await
            .is_some()
    );
    assert!(
        refusal(&[with_disposition("attachment; name=\"a\"")])
            .await
            .is_some()
    );
    let bare = Raw {
        headers: vec!["Content-Type: text/plain".into()],
        data: b"x",
    };
    assert!(refusal(&[bare]).await.is_some());
}

#[tokio::test]
async fn a_content_transfer_encoding_is_refused() {
    let encoded = Raw {
        headers: vec![
            "Content-Disposition: form-data; name=\"a\"".into(),
            "Content-Transfer-Encoding: base64".into(),
        ],
        data: b"Li4vLi4v",
    };
    assert!(refusal(&[encoded]).await.is_some());
}

#[tokio::test]
async fn an_oversized_part_header_is_refused() {
    let header = Raw {
        headers: vec![
            "Content-Disposition: form-data; name=\"a\"".into(),
            format!("X-Padding: {}", "p".repeat(9000)),
        ],
        data: b"x",
    };
    assert_eq!(
        refusal(&[header]).await,
        Some(Violation::new(
            "/body",
            "a part header larger than 8192 bytes"
        ))
    );
}

#[tokio::test]
async fn a_missing_boundary_is_refused_at_the_content_type() {
    let got = parse(
        body(&[]),
        "multipart/form-data",
        &MultipartLimits::default(),
    )
    .await;
    assert_eq!(
        got,
        Err(Violation::new(
            "/header/content-type",
            "must name a multipart boundary"
        ))
    );
    let got = parse(body(&[]), "application/json", &MultipartLimits::default()).await;
    assert_eq!(
        got.map_err(|v| v.pointer),
        Err("/header/content-type".into())
    );
    let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
    assert!(
        parse(body(&[]), &long, &MultipartLimits::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_truncated_body_is_malformed() {
    let whole = body(&[field("a", b"1")]);
    let truncated = whole.slice(..whole.len() - 12);
    assert_eq!(
        parse(truncated, CONTENT_TYPE_HEADER, &MultipartLimits::default()).await,
        Err(Violation::new(
            "/body",
            "must be a well-formed multipart body"
        ))
    );
}

#[tokio::test]
async fn arbitrary_and_mutated_bodies_never_panic() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    let seed = body(&[
        field("title", b"x"),
        file("f", "a.txt", b"data"),
        with_disposition("form-data; name=b; filename=c"),
    ]);
    let limits = MultipartLimits {
        max_parts: 2,
        max_part_bytes: 8,
        max_field_bytes: 4,
        max_header_bytes: 128,
    };
    let mut rng = StdRng::seed_from_u64(0x6d75_6c74);
    for round in 0..3000 {
        let input: Vec<u8> = if round % 4 == 0 {
            (0..rng.random_range(0..96)).map(|_| rng.random()).collect()
        } else {
            crate::policy::validate::mutation::mutate(&seed, &mut rng)
        };
        if let Ok(parts) = parse(Bytes::from(input), CONTENT_TYPE_HEADER, &limits).await {
            assert!(parts.len() <= limits.max_parts);
            assert!(parts.iter().all(|p| p.data.len() <= limits.max_part_bytes));
        }
    }
}

#[tokio::test]
async fn a_repeated_content_type_is_refused() {
    let two_types = Raw {
        headers: vec![
            "Content-Disposition: form-data; name=\"a\"; filename=\"a.txt\"".into(),
            "Content-Type: text/plain".into(),
            "content-type: application/x-php".into(),
        ],
        data: b"x",
    };
    assert!(
        refusal(&[field("ok", b"1"), two_types])
            .await
            .is_some_and(|v| v.reason.contains("more than once"))
    );
}

#[tokio::test]
async fn header_names_inside_part_data_are_not_mistaken_for_headers() {
    let email = b"Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\nbody";
    let parts = run(&[file("mail", "message.eml", email)]).await;
    assert!(parts.is_ok_and(|p| p[0].data == Bytes::from_static(email)));
}

#[tokio::test]
async fn a_second_boundary_parameter_is_refused_as_a_parser_differential() {
    let parts = [field("note", b"hello")];
    let refused = parse(
        body(&parts),
        "multipart/form-data; boundary=XyZ; boundary=Other",
        &MultipartLimits::default(),
    )
    .await;
    let Err(violation) = refused else {
        panic!("two boundaries must be refused")
    };
    assert_eq!(violation.pointer, "/header/content-type");
    let extended = parse(
        body(&parts),
        "multipart/form-data; boundary=XyZ; boundary*=utf-8''Other",
        &MultipartLimits::default(),
    )
    .await;
    assert!(extended.is_err(), "an RFC 2231 boundary is a second one");
}
