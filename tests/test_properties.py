"""Property-based tests (hypothesis) of the parsers and of the responsibility maps.

Parsers (hands files, EgoHOS label PNGs, ``.flo``): valid input round-trips exactly; any input,
however malformed, gives a result or an :class:`InputError`, never another exception.
Responsibility maps: invariance to a global translation of the content (flow field and hand points
shifted together by an integer (sx, sy): the maps shift with them) and, with the camera-homography
background, to a constant offset added to the whole flow. (That the maps are probabilities for any
flow and hands is tested in tests/responsibility/test_maps.py; not repeated here.)
"""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cohesiv.errors import InputError
from cohesiv.io import read_flo, read_hands, read_label, write_flo, write_hands, write_label
from cohesiv.io.hands import HandTracks, parse_hands

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ------------------------------------------------------------------------------------- hands files


@st.composite
def hands_docs(draw):
    """A valid hands.json document (dict) and its image size."""
    w = draw(st.integers(8, 400))
    h = draw(st.integers(8, 400))
    coord_x = st.floats(-0.5, w - 0.5, allow_nan=False, width=32)
    coord_y = st.floats(-0.5, h - 0.5, allow_nan=False, width=32)
    point = st.tuples(coord_x, coord_y).map(list)
    frames = {}
    for t in draw(st.sets(st.integers(0, 500), max_size=4)):
        hands = []
        for j in range(draw(st.integers(0, 2))):
            hd = {
                "id": draw(st.sampled_from(["left", "right"])) + str(j),
                "side": draw(st.sampled_from([None, "left", "right"])),
            }
            if draw(st.booleans()):
                hd["points"] = draw(st.lists(point, min_size=4, max_size=12))
            else:
                x1 = draw(st.floats(0, w - 3, allow_nan=False))
                y1 = draw(st.floats(0, h - 3, allow_nan=False))
                x2 = draw(st.floats(x1 + 1, w - 1, allow_nan=False))
                y2 = draw(st.floats(y1 + 1, h - 1, allow_nan=False))
                hd["box"] = [x1, y1, x2, y2]
            if draw(st.booleans()):
                hd["query"] = draw(point)
            hands.append(hd)
        frames[str(t)] = hands
    return {"version": 1, "image_size": [w, h], "frames": frames}


@FAST
@given(hands_docs())
def test_valid_hands_files_parse_and_round_trip(tmp_path_factory, doc):
    tracks = parse_hands(doc, "h.json")
    assert tracks.image_size == tuple(doc["image_size"])
    assert sorted(tracks.frames) == sorted(int(t) for t in doc["frames"])
    for t, hands in doc["frames"].items():
        got = tracks.hands_at(int(t))
        assert [h.id for h in got] == [h["id"] for h in hands]
        for hd, h in zip(hands, got):
            assert h.points.dtype == np.float32 and h.points.ndim == 2 and len(h.points) >= 4
            if "points" in hd:
                np.testing.assert_array_equal(h.points, np.asarray(hd["points"], np.float32))
            if "query" in hd:
                assert h.query == tuple(hd["query"])
            else:  # defaults to the mean of the points
                np.testing.assert_allclose(h.query, h.points.mean(0), rtol=1e-5, atol=1e-3)
    # write -> read gives the same tracks (points rounded to 1e-3 px by the writer)
    path = tmp_path_factory.mktemp("h") / "hands.json"
    write_hands(path, tracks)
    back = read_hands(path)
    assert back.image_size == tracks.image_size and sorted(back.frames) == sorted(tracks.frames)
    for t in tracks.frames:
        for a, b in zip(tracks.hands_at(t), back.hands_at(t)):
            assert (a.id, a.side) == (b.id, b.side)
            np.testing.assert_allclose(b.points, a.points, atol=6e-4)
            np.testing.assert_allclose(b.query, a.query, atol=1e-4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=6), kids, max_size=5),
    max_leaves=30,
)


@st.composite
def mutated_hands_docs(draw):
    """A valid document with one value somewhere replaced by arbitrary JSON (or deleted)."""
    doc = draw(hands_docs())
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(doc, ())
    path = draw(st.sampled_from(paths))
    new = draw(json_values)
    if not path:
        return new
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


@FAST
@given(mutated_hands_docs())
def test_any_malformed_hands_document_gives_a_result_or_an_input_error(doc):
    try:
        tracks = parse_hands(doc, "bad.json")
    except InputError as e:
        assert str(e).startswith("bad.json: ") and "\n" not in str(e)
        return
    assert isinstance(tracks, HandTracks)
    w, h = tracks.image_size
    for hands in tracks.frames.values():
        for hd in hands:  # what is accepted obeys the schema
            assert len(hd.points) >= 4 and np.isfinite(hd.points).all()
            assert hd.side in (None, "left", "right")
            assert (hd.points[:, 0] >= -2.5).all() and (hd.points[:, 0] <= w + 1.5).all()
            assert all(math.isfinite(v) for v in hd.query)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_hands_file_give_a_result_or_an_input_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("hb") / "hands.json"
    path.write_bytes(data)
    try:
        read_hands(path)
    except InputError as e:
        assert "hands.json" in str(e) and "\n" not in str(e)


# ------------------------------------------------------------------------------------------ labels


@FAST
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
)
def test_label_png_is_accepted_iff_values_are_egohos(tmp_path_factory, w, h, seed, high):
    from PIL import Image

    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 9, (h, w), dtype=np.uint8)
    lab.flat[rng.integers(lab.size)] = high  # one pixel with any value
    path = tmp_path_factory.mktemp("lab") / "l.png"
    Image.fromarray(lab, mode="L").save(path)
    if high <= 8:
        np.testing.assert_array_equal(read_label(path), lab)
        write_label(path, lab)
        np.testing.assert_array_equal(read_label(path), lab)
    else:
        with pytest.raises(InputError, match=rf"l.png: label values \[{high}\] out of range 0..8"):
            read_label(path)


@FAST
@given(st.binary(max_size=400), st.booleans())
def test_any_bytes_as_label_png_give_a_label_or_an_input_error(tmp_path_factory, data, png_header):
    path = tmp_path_factory.mktemp("lb") / "l.png"
    path.write_bytes((b"\x89PNG\r\n\x1a\n" if png_header else b"") + data)
    try:
        lab = read_label(path)
    except InputError as e:
        assert "l.png" in str(e) and "\n" not in str(e)
    else:
        assert lab.dtype == np.uint8 and lab.ndim == 2 and lab.max(initial=0) <= 8


# ---------------------------------------------------------------------------------------- flo files


@FAST
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_flo_round_trip_is_exact(tmp_path_factory, w, h, seed):
    flow = np.random.default_rng(seed).normal(0, 50, (2, h, w)).astype(np.float32)
    path = tmp_path_factory.mktemp("flo") / "f.flo"
    write_flo(path, flow)
    np.testing.assert_array_equal(read_flo(path), flow)


@FAST
@given(st.binary(min_size=0, max_size=200), st.booleans())
def test_any_bytes_as_flo_give_a_flow_or_an_input_error(tmp_path_factory, data, magic):
    path = tmp_path_factory.mktemp("flob") / "f.flo"
    head = np.array([202021.25], "<f4").tobytes() if magic else b""
    path.write_bytes(head + data)
    try:
        flow = read_flo(path)
    except InputError as e:
        assert "f.flo" in str(e) and "\n" not in str(e)
    else:
        assert flow.dtype == np.float32 and flow.shape[0] == 2 and np.isfinite(flow).all()


# ------------------------------------------------------------------------- responsibility maps

W, H = 64, 48


def _homography(tx, ty, angle_deg, cx, cy):
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy], [0, 0, 1.0]])
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]]) @ rot


def _motion(m, w=W, h=H):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    p = np.stack([xs, ys, np.ones_like(xs)])
    q = np.einsum("ij,jhw->ihw", m, p)
    return q[:2] / q[2:] - p[:2]


@st.composite
def hand_scenes(draw):
    """Flow (2,H,W) of a square hand moving by a random rigid motion over a static (or moving) background."""
    x1 = draw(st.integers(14, 30))
    y1 = draw(st.integers(12, 20))
    size = draw(st.integers(10, 14))
    m = _homography(
        draw(st.floats(-6, 6)),
        draw(st.floats(-6, 6)),
        draw(st.floats(-6, 6)),
        x1 + size / 2,
        y1 + size / 2,
    )
    assume(np.abs(m[:2, 2] - np.eye(3)[:2, 2]).max() > 0)
    mask = np.zeros((H, W), bool)
    mask[y1 : y1 + size, x1 : x1 + size] = True
    flow = np.where(mask[None], _motion(m), 0.0).astype(np.float32)
    xs = np.linspace(x1 + 1, x1 + size - 2, 5)
    ys = np.linspace(y1 + 1, y1 + size - 2, 5)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    # the hand's motion must differ from the static background somewhere, or the maps are ties
    assume(np.abs(flow[:, mask]).max() > 1.0)
    return flow, pts


@settings(max_examples=25, deadline=None)
@given(hand_scenes(), st.integers(-8, 8), st.integers(-8, 8), st.sampled_from(["dlt", "magsac"]))
def test_maps_move_with_a_global_translation_of_flow_and_points(scene, sx, sy, method):
    from cohesiv.responsibility import responsibility_maps

    flow, pts = scene
    r0, info0 = responsibility_maps(flow, [pts], method=method)
    shifted = np.zeros_like(flow)  # content moved by (sx, sy); the uncovered border is static
    ys, xs = slice(max(sy, 0), H + min(sy, 0)), slice(max(sx, 0), W + min(sx, 0))
    ys0, xs0 = slice(max(-sy, 0), H + min(-sy, 0)), slice(max(-sx, 0), W + min(-sx, 0))
    shifted[:, ys, xs] = flow[:, ys0, xs0]
    r1, info1 = responsibility_maps(shifted, [pts + np.array([sx, sy], np.float32)], method=method)
    assert info0["fitted"] == info1["fitted"]
    np.testing.assert_allclose(r1[:, ys, xs], r0[:, ys0, xs0], atol=2e-3)
    np.testing.assert_allclose(r1.sum(0), 1.0, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(
    hand_scenes(),
    st.floats(-10, 10, allow_nan=False),
    st.floats(-10, 10, allow_nan=False),
    st.floats(-1.0, 1.0),
)
def test_homography_background_maps_ignore_a_constant_flow_offset(scene, dx, dy, cam_angle):
    from cohesiv.responsibility import responsibility_maps

    flow, pts = scene
    cam = _motion(_homography(1.0, -1.0, cam_angle, W / 2, H / 2)).astype(np.float32)
    moving = np.where(flow != 0, flow, cam).astype(np.float32)  # camera moves too
    r0, _ = responsibility_maps(moving, [pts], background="homography", method="dlt")
    r1, _ = responsibility_maps(
        moving + np.array([dx, dy], np.float32)[:, None, None], [pts], background="homography", method="dlt"
    )
    np.testing.assert_allclose(r1, r0, atol=5e-3)


def test_hands_strategy_really_makes_valid_json():
    # a sanity check of the generator itself: json.dumps -> parse, with NaN refused by the schema
    doc = {
        "version": 1,
        "image_size": [10, 10],
        "frames": {"0": [{"points": [[1, 1]] * 3 + [[float("nan"), 1]]}]},
    }
    with pytest.raises(InputError, match="finite number"):
        parse_hands(json.loads(json.dumps(doc)), "x.json")
