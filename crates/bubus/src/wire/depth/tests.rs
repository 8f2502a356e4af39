use super::*;
use serde_json::json;

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| Value::Array(vec![inner]))
}

#[test]
fn values_and_serialized_values_measure_the_same() {
    #[derive(Serialize)]
    struct Inner {
        tags: Vec<String>,
        map: std::collections::BTreeMap<String, Vec<u8>>,
    }
    #[derive(Serialize)]
    enum Shape {
        Unit,
        New(Vec<u8>),
        Tuple(u8, Vec<u8>),
        Struct { points: Vec<(u8, u8)> },
    }
    #[derive(Serialize)]
    struct Outer {
        id: u64,
        inner: Inner,
        shapes: Vec<Shape>,
        raw: Value,
        missing: Option<Box<Outer>>,
    }
    let outer = Outer {
        id: 1,
        inner: Inner {
            tags: vec!["a".into()],
            map: [("k".to_owned(), vec![1u8])].into(),
        },
        shapes: vec![
            Shape::Unit,
            Shape::New(vec![1]),
            Shape::Tuple(1, vec![2]),
            Shape::Struct {
                points: vec![(1, 2)],
            },
        ],
        raw: nested(7),
        missing: None,
    };
    let json = serde_json::to_value(&outer).unwrap();
    assert_eq!(serialized_depth(&outer, 100), value_depth(&json, 100));
    assert_eq!(value_depth(&json, 100), 8);
    for depth in [0, 1, 2, 50] {
        assert_eq!(value_depth(&nested(depth), 100), depth);
        assert_eq!(serialized_depth(&nested(depth), 100), depth);
    }
}

#[test]
fn the_walk_stops_past_the_limit() {
    assert_eq!(value_depth(&nested(5), 3), 4);
    assert_eq!(serialized_depth(&nested(5), 3), 4);
    // Deeper than recursion could go: measured without recursing through it.
    let deep = nested(200_000);
    assert_eq!(value_depth(&deep, MAX_JSON_DEPTH), MAX_JSON_DEPTH + 1);
    assert_eq!(serialized_depth(&deep, MAX_JSON_DEPTH), MAX_JSON_DEPTH + 1);
    // Taken apart one level at a time: dropping it whole would recurse 200 000 deep.
    let mut parts = vec![deep];
    while let Some(part) = parts.pop() {
        if let Value::Array(items) = part {
            parts.extend(items);
        }
    }
}
