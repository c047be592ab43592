import pytest
import torch

from genre.core.decoder import sample
from genre.core.network import RecourseTransformer, TransformerConfig

D = 4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models: thread hand-offs cost more than they save, and on a busy 2-core machine
    # they can slow training tenfold.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return RecourseTransformer(TransformerConfig(n_features=D, n_bins=20, d_model=16, n_heads=2,
                                                 d_ff=32, dropout=0.0)).eval()


def test_config_round_trip():
    cfg = TransformerConfig(n_features=7, n_bins=30, n_enc_layers=3)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        TransformerConfig(n_features=3, d_model=30, n_heads=4)


def test_forward_shape_and_finite_loss(model):
    x = torch.rand(5, D)
    assert model(x, torch.rand(5, D)).shape == (5, D, 20)
    # Slightly out-of-range values must not break the soft targets.
    loss = model.loss(x, torch.rand(5, D) * 1.2 - 0.1)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_decoder_is_causal(model):
    # Changing x+_k must leave the predictions for features 0..k untouched.
    x, xp = torch.rand(3, D), torch.rand(3, D)
    xp2 = xp.clone()
    xp2[:, 2] = torch.rand(3)
    a, b = model(x, xp), model(x, xp2)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_loss_falls_on_shift_task():
    torch.manual_seed(0)
    cfg = TransformerConfig(n_features=3, n_bins=20, d_model=16, n_heads=2, d_ff=32)
    m = RecourseTransformer(cfg)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    x = torch.rand(256, 3)
    xp = (x + 0.3).clamp(0, 1)
    losses = []
    for _ in range(100):
        loss = m.loss(x, xp)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_samples_in_range_with_fixed_and_mask(model):
    x = torch.rand(64, D) * 1.2 - 0.1  # fixed values outside [0,1] must be kept as they are
    fixed = torch.tensor([False, True, False, False])
    mask = torch.ones(64, D, 20, dtype=torch.bool)
    mask[:, 0, :10] = False  # feature 0 may only take bins >= 0.5
    mask[:5, 2] = False  # all bins forbidden: falls back to unmasked instead of NaN
    g = torch.Generator().manual_seed(0)
    s = sample(model, x, bin_mask=mask, fixed=fixed, generator=g)
    assert s.shape == (64, D)
    assert torch.equal(s[:, 1], x[:, 1])
    free = s[:, [0, 2, 3]]
    assert torch.isfinite(free).all() and (free >= 0).all() and (free <= 1).all()
    assert (s[:, 0] >= 0.5).all()


def test_fixed_per_row_and_noise(model):
    x = torch.rand(8, D)
    fixed = torch.zeros(8, D, dtype=torch.bool)
    fixed[::2, 3] = True
    g = torch.Generator().manual_seed(1)
    s = sample(model, x, sigma=0.05, fixed=fixed, generator=g)
    assert torch.equal(s[::2, 3], x[::2, 3])
    assert (s >= 0).all() and (s <= 1).all()
    # With noise, values leave the bin grid.
    on_grid = torch.isclose(s[:, :3] * 20, (s[:, :3] * 20).round())
    assert not on_grid.all()


def test_cached_and_uncached_sampling_agree(model):
    x = torch.rand(32, D)

    def draw(use_cache, sigma):
        g = torch.Generator().manual_seed(3)
        return sample(model, x, temperature=1.0, sigma=sigma, generator=g, use_cache=use_cache)

    # sigma = 0: values are bin edges, so the same bins means exactly the same samples.
    assert torch.equal(draw(True, 0.0), draw(False, 0.0))
    torch.testing.assert_close(draw(True, 0.02), draw(False, 0.02), atol=1e-5, rtol=0)
    # The two paths also agree on the logits they sample from.
    memory = model.encode(x)
    caches = [{} for _ in model.dec_blocks]
    tokens = torch.cat([torch.ones(32, 1), torch.rand(32, D - 1)], dim=1)
    full = model.decode(tokens, memory)
    steps = [model.decode(tokens[:, j:j + 1], memory, start=j, caches=caches) for j in range(D)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_seed_controls_samples(model):
    x = torch.rand(32, D)
    a = sample(model, x, temperature=1.0, generator=torch.Generator().manual_seed(5))
    b = sample(model, x, temperature=1.0, generator=torch.Generator().manual_seed(5))
    c = sample(model, x, temperature=1.0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_restores_training_mode(model):
    model.train()
    sample(model, torch.rand(2, D))
    assert model.training


def test_shared_bin_mask_broadcasts(model):
    mask = torch.zeros(D, 20, dtype=torch.bool)
    mask[:, 7] = True  # every feature forced onto the bin at 7/20
    s = sample(model, torch.rand(16, D), bin_mask=mask, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s, torch.full((16, D), 7 / 20))


@pytest.mark.parametrize(("sigma", "max_changes", "stay_radius"),
                         [(0.0, None, 0), (0.03, None, 0), (0.0, None, 1), (0.0, 1, 0),
                          (0.0, 2, 1), (0.03, 1, 1)])
def test_fast_path_matches_reference_with_groups(model, sigma, max_changes, stay_radius):
    # Several samples per person (runs of identical rows): the fast path decodes shared
    # prefixes once, skips decided steps (fixed, or one allowed bin) and must still draw
    # exactly the reference's samples, also with a cap on changed features (per row) and
    # a radius of bins that keep the factual's value.
    people = torch.rand(40, D)
    x = people.repeat_interleave(16, dim=0)
    fixed = torch.tensor([False, False, True, False])
    mask = torch.ones(40, D, 20, dtype=torch.bool)
    mask[:, 1] = False
    mask[:, 1, 4] = True  # feature 1: exactly one bin allowed, for everyone
    mask[:20, 3, :10] = False  # half the people: feature 3 in the upper half only
    mask = mask.repeat_interleave(16, dim=0)
    bin_values = torch.rand(D, 20)

    def draw(use_cache):
        g = torch.Generator().manual_seed(7)
        return sample(model, x, temperature=2.0, sigma=sigma, bin_mask=mask, fixed=fixed,
                            generator=g, use_cache=use_cache, bin_values=bin_values,
                            stay_in_bin=True, group=16, max_changes=max_changes,
                            stay_radius=stay_radius)

    fast, ref = draw(True), draw(False)
    own = (x * 20).floor().clamp(0, 19)
    if sigma == 0:
        assert torch.equal(fast, ref)
    else:
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    if sigma == 0 and max_changes is None:
        # the one allowed bin's value, or the factual's own where it lies within the radius
        near = (own[:, 1] - 4).abs() <= stay_radius
        assert torch.equal(fast[:, 1], torch.where(near, x[:, 1], bin_values[1, 4]))
    assert torch.equal(fast[:, 2], x[:, 2])
    # Samples differ within a person: the rows of a run are drawn independently.
    assert len(torch.unique(fast[:16], dim=0)) > 1
    if max_changes is not None:
        for out in (fast, ref):
            moved = (out != x).sum(dim=1)
            assert moved.max() == max_changes  # the cap binds and holds, row by row
            # a row stops changing at its cap: every later feature is x's value exactly
            at_cap = (out != x).long().cumsum(dim=1) >= max_changes
            later = torch.cat([torch.zeros(len(x), 1, dtype=torch.bool), at_cap[:, :-1]], 1)
            assert torch.equal(out[later], x[later])
