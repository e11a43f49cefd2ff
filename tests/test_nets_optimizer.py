"""train_network's optimiser: the weight terms of the objective as coupled weight decay."""

import copy

import pytest
import torch

from nclab import nets

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_coupled_decay_equals_the_weight_terms_in_the_loss(optimizer):
    """Decay lam on a parameter group takes the same steps as lam/2 ||p||^2 in the loss."""
    lam_W, mu = 0.3, 0.1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        a = nets.MLPNetwork(4, 3, 5, depth=2, L=2, bias=True).double()
        X = torch.randn(7, 4, dtype=torch.float64)
    b = copy.deepcopy(a)
    opt_a = nets._optimizer(a, optimizer, 1e-2, 0.9, lam_W, mu)
    opt_b = (torch.optim.Adam(b.parameters(), lr=1e-2) if optimizer == "adam"
             else torch.optim.SGD(b.parameters(), lr=1e-2, momentum=0.9))  # fmt: skip
    for _ in range(5):
        opt_a.zero_grad()
        (a(X) ** 2).sum().backward()
        opt_a.step()
        penalty = sum(lam_W / 2 * (p**2).sum() for p in b.head.parameters())
        penalty = penalty + sum(mu / 2 * (p**2).sum() for p in b.backbone_weights())
        opt_b.zero_grad()
        ((b(X) ** 2).sum() + penalty).backward()
        opt_b.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=name)
    # the biases (of the backbone and of the head) are not decayed
    decayed = {id(p) for g in opt_a.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert all(id(p) not in decayed for n, p in a.named_parameters() if n == "b" or n.endswith(".bias"))
