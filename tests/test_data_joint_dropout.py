"""RandomJointDropout keeps ``num_nodes`` consistent with the kept joints, so a DataLoader batch
of dropped samples offsets every sample's edges by the rows before it (exact integer checks)."""
import torch
from torch_geometric.loader import DataLoader

from hgn_pyg.data import RandomJointDropout, skeleton_template


def test_num_nodes_follows_the_kept_joints_in_a_batch():
    base = skeleton_template()  # explicit num_nodes=17
    gen = torch.Generator().manual_seed(0)
    drop = RandomJointDropout(0.4, generator=gen)
    samples = []
    for i in range(6):
        d = base.clone()
        d.x = torch.randn(17, 2, generator=gen)
        d.y = torch.randn(17, 3, generator=gen)
        out = drop(d)
        assert out.num_nodes == out.x.size(0) == out.y.size(0)
        assert int(out.edge_index.max()) < out.num_nodes
        samples.append(out)
    assert len({s.num_nodes for s in samples}) > 1  # topologies differ
    batch = next(iter(DataLoader(samples, batch_size=len(samples))))
    assert batch.num_nodes == batch.x.size(0) == sum(s.num_nodes for s in samples)
    start = 0
    for i, s in enumerate(samples):
        assert int(batch.ptr[i]) == start
        cols = (batch.batch[batch.edge_index[1]] == i).nonzero().view(-1)
        assert torch.equal(batch.edge_index[:, cols], s.edge_index + start)
        assert torch.equal(batch.edge_type[cols], s.edge_type)
        start += s.num_nodes
    # every edge stays inside its own graph
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])
