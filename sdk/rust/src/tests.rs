//! Native unit tests of the SDK's own types.

use crate::column::cast_or_copy;
use crate::*;

#[test]
fn selection_packing() {
    for n in [0usize, 1, 7, 8, 9, 16, 17, 100] {
        let vals: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let a = Selection::from_fn(n, |i| i % 3 == 0);
        let b = Selection::from_values(&vals, |v| (*v as usize).is_multiple_of(3));
        let c = Selection::from_bools((0..n).map(|i| i % 3 == 0));
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.as_bytes().len(), n.div_ceil(8));
        assert_eq!(a.count(), (0..n).filter(|i| i % 3 == 0).count());
        assert_eq!(Selection::all(n).count(), n);
        assert_eq!(Selection::all(n).invert(), Selection::none(n));
    }
    let s = Selection::from_fn(10, |i| i == 0 || i == 9);
    assert_eq!(s.as_bytes(), &[0b0000_0001, 0b0000_0010]);
}

#[test]
fn selection_drops_nulls() {
    let col = Column::from(vec![Some(5.0), None, Some(2000.0), Some(3000.0), None]);
    let sel = Selection::from_values(&col.f64_values().unwrap(), |v| *v > 1000.0)
        .and_validity(col.validity());
    assert_eq!(
        (0..5).filter(|i| sel.get(*i)).collect::<Vec<_>>(),
        vec![2, 3]
    );
}

#[test]
fn primitive_round_trip_with_nulls() {
    let c = Column::from(vec![Some(1i64), None, Some(-3)]);
    assert_eq!(c.data_type(), &DataType::Int64);
    assert_eq!(c.null_count(), 1);
    assert!(c.is_valid(0) && c.is_null(1) && c.is_valid(2) && !c.is_valid(3));
    assert_eq!(&c.i64_values().unwrap()[..], &[1, 0, -3]);
    assert!(c.f64_values().is_err());
    let c2 = Column::from_values_with_validity(
        c.i64_values().unwrap().into_owned(),
        c.validity().map(<[u8]>::to_vec),
    )
    .unwrap();
    assert_eq!(c, c2);
    assert_eq!(
        &Column::from(vec![1.5f32, 2.5]).f32_values().unwrap()[..],
        &[1.5, 2.5]
    );
    assert_eq!(&Column::from(vec![7i32]).i32_values().unwrap()[..], &[7]);
    assert_eq!(Column::from(vec![1.0f64, 2.0]).null_count(), 0);
    let ts = Column::timestamps_opt(
        vec![Some(10), None],
        TimeUnit::Millisecond,
        Some("UTC".into()),
    );
    assert_eq!(&ts.timestamp_values().unwrap()[..], &[10, 0]);
    assert!(ts.i64_values().is_err());
    assert_eq!(
        (
            ts.timestamp_value(0),
            ts.timestamp_value(1),
            ts.i64_value(0)
        ),
        (Some(10), None, None)
    );
    assert_eq!(
        (c.i64_value(2), c.i64_value(1), c.f64_value(0)),
        (Some(-3), None, None)
    );
}

#[test]
fn unaligned_and_short_buffers() {
    let bytes: Vec<u8> = [1.0f64, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&bytes);
    assert_eq!(
        &cast_or_copy::<f64>(&shifted[1..], 3).unwrap()[..],
        &[1.0, 2.0, 3.0]
    );
    assert!(cast_or_copy::<f64>(&bytes, 4).is_err());
    assert!(Column::from_raw_parts(DataType::Float64, 4, None, vec![], bytes, None).is_err());
}

#[test]
fn bools_strings_binary_lists() {
    let b = Column::from(vec![Some(true), None, Some(false)]);
    assert_eq!(
        b.bools().unwrap().collect::<Vec<_>>(),
        vec![Some(true), None, Some(false)]
    );
    assert_eq!(b.bool_value(0), Some(true));
    assert_eq!(b.bool_value(1), None);

    let s = Column::from(vec![Some("héllo"), None, Some(""), Some("x")]);
    assert_eq!(
        s.strs().unwrap().collect::<Vec<_>>(),
        vec![Some("héllo"), None, Some(""), Some("x")]
    );
    assert_eq!(s.str_value(0), Some("héllo"));
    assert_eq!(s.str_value(1), None);
    assert_eq!(s.null_count(), 1);

    let bin = Column::from(vec![Some(vec![0u8, 255]), None]);
    assert_eq!(
        bin.binaries().unwrap().collect::<Vec<_>>(),
        vec![Some(&[0u8, 255][..]), None]
    );

    let mut lb = ListUtf8Builder::new();
    lb.push(Some([Some("a"), None, Some("bc")]));
    lb.push_null();
    lb.push(Some(Vec::<Option<&str>>::new()));
    let l = lb.finish();
    let view = l.list_utf8().unwrap();
    let rows: Vec<Option<Vec<Option<&str>>>> =
        view.iter().map(|o| o.map(|l| l.iter().collect())).collect();
    assert_eq!(
        rows,
        vec![Some(vec![Some("a"), None, Some("bc")]), None, Some(vec![])]
    );
    assert_eq!(l.list_value(0), Some(vec![Some("a"), None, Some("bc")]));
}

#[test]
fn truncate_every_type() {
    let mut s = Column::from(vec![Some("a"), None, Some("ccc")]);
    s.truncate(2);
    assert_eq!(s, Column::from(vec![Some("a"), None]));
    let mut f = Column::from(vec![1.0f64, 2.0, 3.0]);
    f.truncate(1);
    assert_eq!(f, Column::from(vec![1.0f64]));
    let mut lb = ListUtf8Builder::new();
    lb.push(Some([Some("a")]));
    lb.push(Some([Some("b"), Some("c")]));
    let mut l = lb.finish();
    l.truncate(1);
    assert_eq!(l.list_value(0), Some(vec![Some("a")]));
    assert_eq!(l.len(), 1);
}

#[test]
fn batch_building() {
    let b = Batch::new(
        vec![
            Field::new("x", DataType::Float64, false),
            Field::new("s", DataType::Utf8, true),
        ],
        vec![
            Column::from(vec![1.0, 2.0]),
            Column::from(vec![Some("a"), None]),
        ],
    )
    .unwrap();
    assert_eq!(b.num_rows(), 2);
    assert!(b.column("x").is_ok());
    assert!(matches!(b.column("nope"), Err(Error::InvalidInput(_))));
    let b2 = b
        .clone()
        .with_column(
            Field::new("y", DataType::Int64, true),
            Column::from(vec![1i64, 2]),
        )
        .unwrap();
    assert_eq!(b2.num_columns(), 3);
    // Length, type, duplicate and nullability mismatches.
    assert!(
        b.clone()
            .with_column(
                Field::new("y", DataType::Int64, true),
                Column::from(vec![1i64])
            )
            .is_err()
    );
    assert!(
        b.clone()
            .with_column(
                Field::new("y", DataType::Int32, true),
                Column::from(vec![1i64, 2])
            )
            .is_err()
    );
    assert!(
        b.clone()
            .with_column(
                Field::new("x", DataType::Int64, true),
                Column::from(vec![1i64, 2])
            )
            .is_err()
    );
    assert!(
        b.with_column(
            Field::new("z", DataType::Int64, false),
            Column::from(vec![Some(1i64), None])
        )
        .is_err()
    );
    assert_eq!(Batch::new(vec![], vec![]).unwrap().num_rows(), 0);
}

#[test]
fn config_parsing() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct C {
        url: String,
    }
    let e = crate::__private::parse_config::<C>("{}").unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig(m) if m.contains("url")),
        "{e}"
    );
    assert_eq!(
        crate::__private::parse_config::<C>(r#"{"url":"u"}"#)
            .unwrap()
            .url,
        "u"
    );
    assert!(crate::__private::parse_config::<serde_json::Value>("").is_ok());
}

#[test]
fn string_and_binary_views_refuse_broken_buffers() {
    fn offsets(o: &[i32]) -> Vec<u8> {
        o.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
    let column = |data_type: DataType, validity: Option<Vec<u8>>, o: &[i32], values: &[u8]| {
        Column::from_raw_parts_unchecked(
            data_type,
            o.len() - 1,
            validity,
            offsets(o),
            values.to_vec(),
            None,
        )
    };
    let utf8_error = |validity, o: &[i32], values: &[u8]| {
        column(DataType::Utf8, validity, o, values)
            .utf8()
            .unwrap_err()
            .to_string()
    };
    let binary = |validity, o: &[i32], values: &[u8]| {
        column(DataType::Binary, validity, o, values)
            .binary()
            .map(|_| ())
    };

    let good = column(DataType::Utf8, Some(vec![0b01]), &[0, 2, 2], b"ab");
    assert_eq!(
        good.utf8().unwrap().into_iter().collect::<Vec<_>>(),
        vec![Some("ab"), None]
    );
    for (o, values) in [
        (&[0, 2, 1][..], &b"ab"[..]),
        (&[0, 5][..], &b"abc"[..]),
        (&[-1, 1][..], &b"a"[..]),
    ] {
        assert!(
            utf8_error(None, o, values).contains("invalid offsets buffer"),
            "{o:?}"
        );
        assert!(
            binary(None, o, values)
                .unwrap_err()
                .to_string()
                .contains("invalid offsets buffer"),
            "{o:?}"
        );
    }
    assert!(utf8_error(Some(vec![]), &[0, 1], b"a").contains("validity bitmap too short"));
    assert!(binary(Some(vec![]), &[0, 1], b"a").is_err());
    // Bytes a binary view takes and a string view refuses.
    assert!(utf8_error(None, &[0, 1], &[0xff]).contains("invalid UTF-8"));
    assert!(binary(None, &[0, 1], &[0xff]).is_ok());
    assert!(utf8_error(None, &[0, 1, 2], "é".as_bytes()).contains("inside a character"));
    assert!(binary(None, &[0, 1, 2], "é".as_bytes()).is_ok());
}
