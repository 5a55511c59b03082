//! `neat_packing`: a row holding two examples, with an attention mask numbering them 1 and 2
//! (0 on padding), gives each example the logits it has alone: the mask is block-diagonal
//! and rotary attention depends only on position differences inside a block.

mod common;

use candle_core::{Device, IndexOp, Tensor};
use common::{fixture, max_abs_diff};

/// Positions of the packed row are offset by up to 6 for the second example: f32 rounding
/// of the rotated q/k differs, not the math.
const TOL: f32 = 1e-4;

fn check(variant: &str) {
    let dev = Device::Cpu;
    let model = ferrotune_model::load_hf_dir(&fixture(&format!("tiny/{variant}")), &dev).unwrap();
    let a: Vec<u32> = vec![3, 17, 42, 8, 99, 5];
    let b: Vec<u32> = vec![11, 64, 2, 73, 30, 21, 9];
    let alone = |ids: &[u32]| {
        let t = Tensor::new(ids, &dev).unwrap().unsqueeze(0).unwrap();
        model.forward(&t, None).unwrap().i(0).unwrap()
    };
    let (la, lb) = (alone(&a), alone(&b));

    let mut ids = a.clone();
    ids.extend(&b);
    ids.extend([0, 0]);
    let mut mask = vec![1u32; a.len()];
    mask.extend(vec![2u32; b.len()]);
    mask.extend([0, 0]);
    let ids = Tensor::new(ids.as_slice(), &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = Tensor::new(mask.as_slice(), &dev)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let packed = model.forward(&ids, Some(&mask)).unwrap().i(0).unwrap();
    let pa = packed.narrow(0, 0, a.len()).unwrap();
    let pb = packed.narrow(0, a.len(), b.len()).unwrap();
    let (da, db) = (max_abs_diff(&pa, &la), max_abs_diff(&pb, &lb));
    println!("{variant}: max |Δlogit| first {da:.2e}, second {db:.2e}");
    assert!(da <= TOL && db <= TOL, "{variant}: {da:e} {db:e}");

    // Without the block mask (plain `packing`, all ones) the second example sees the first.
    let ones = Tensor::ones((1, a.len() + b.len() + 2), candle_core::DType::U32, &dev).unwrap();
    let mixed = model.forward(&ids, Some(&ones)).unwrap().i(0).unwrap();
    let mb = mixed.narrow(0, a.len(), b.len()).unwrap();
    assert!(
        max_abs_diff(&mb, &lb) > 1e-3,
        "{variant}: cross-attention had no effect"
    );
}

#[test]
fn llama_packed_examples_do_not_see_each_other() {
    check("llama");
}

#[test]
fn qwen3_packed_examples_do_not_see_each_other() {
    check("qwen3");
}

#[test]
fn phi3_packed_examples_do_not_see_each_other() {
    check("phi3");
}
