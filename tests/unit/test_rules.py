from __future__ import annotations

import pytest

from bot.config import Config, DenyEntry, Rule, parse_config
from bot.errors import MappingError
from bot.reference import parse_reference
from bot.rules import Mapper

ECR = "048912060910.dkr.ecr.cn-northwest-1.amazonaws.com.cn"


@pytest.fixture
def mapper() -> Mapper:
    return Mapper(Config())


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("nginx:1.17.9", "dockerhub/nginx:1.17.9"),
        ("library/nginx:1.17.9", "dockerhub/library/nginx:1.17.9"),
        ("docker.io/library/nginx:1.17.9", "dockerhub/library/nginx:1.17.9"),
        ("index.docker.io/bitnami/redis:7", "dockerhub/bitnami/redis:7"),
        ("registry-1.docker.io/bitnami/redis:7", "dockerhub/bitnami/redis:7"),
        ("busybox", "dockerhub/busybox:latest"),
        ("gcr.io/heptio-images/velero:v1.1.0", "gcr/heptio-images/velero:v1.1.0"),
        ("asia.gcr.io/proj/app:1", "gcr/proj/app:1"),
        ("us.gcr.io/proj/app:1", "gcr/proj/app:1"),
        ("eu.gcr.io/proj/app:1", "gcr/proj/app:1"),
        ("k8s.gcr.io/cluster-autoscaler:v1.2.2", "gcr/google_containers/cluster-autoscaler:v1.2.2"),
        ("registry.k8s.io/ingress-nginx/controller:v1.3.1", "gcr/google_containers/ingress-nginx/controller:v1.3.1"),
        ("quay.io/calico/node:v3.7.4", "quay/calico/node:v3.7.4"),
        ("ghcr.io/fluxcd/flux-cli:v2.2.0", "ghcr/fluxcd/flux-cli:v2.2.0"),
        ("public.ecr.aws/eks-distro/kubernetes/pause:3.9", "ecrpublic/eks-distro/kubernetes/pause:3.9"),
        ("602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.5.5", "amazonecr/amazon-k8s-cni:v1.5.5"),
        ("quay.io/calico/node@sha256:" + "b" * 64, "quay/calico/node@sha256:" + "b" * 64),
        ("quay.io/calico/node:v1@sha256:" + "b" * 64, "quay/calico/node:v1@sha256:" + "b" * 64),
    ],
)
def test_default_rules_reproduce_the_original_service(mapper: Mapper, source: str, target: str) -> None:
    assert str(mapper.target(parse_reference(source))) == f"{ECR}/{target}"


@pytest.mark.parametrize(
    "source",
    [
        "docker.elastic.co/elasticsearch/elasticsearch:7.1.0",
        "169.254.169.254/latest:1",
        "localhost/app:1",
        "10.0.0.1:5000/app:1",
        "metadata.google.internal/computemetadata:v1",
        "gcr.io.evil.com/app:1",
    ],
)
def test_registries_without_a_rule_are_refused(mapper: Mapper, source: str) -> None:
    ref = parse_reference(source)
    with pytest.raises(MappingError) as caught:
        mapper.target(ref)
    assert f"registry {ref.host} is not allowed" in caught.value.message
    assert "rules:" in caught.value.message
    assert "mirror/config.yml" in caught.value.message


def test_a_typo_in_a_host_gets_a_suggestion(mapper: Mapper) -> None:
    with pytest.raises(MappingError, match=r"did you mean gcr\.io\?"):
        mapper.target(parse_reference("cr.io/ml-pipeline/minio:1"))


def test_another_account_id_is_not_taken_for_a_typo(mapper: Mapper) -> None:
    with pytest.raises(MappingError) as caught:
        mapper.target(parse_reference("672518094988.dkr.ecr.us-west-2.amazonaws.com/hello-world:v1.0"))
    assert "did you mean" not in caught.value.message


def test_longest_prefix_wins_whatever_the_order() -> None:
    rules = (Rule("quay.io", "quay"), Rule("quay.io/calico", "calico-mirror"), Rule("quay.io/calico/node", "node"))
    for ordered in (rules, tuple(reversed(rules))):
        mapper = Mapper(Config(rules=ordered))
        assert mapper.target(parse_reference("quay.io/calico/node:v1")).repository == "node"
        assert mapper.target(parse_reference("quay.io/calico/cni:v1")).repository == "calico-mirror/cni"
        # whole components only: calicoctl is not under calico
        assert mapper.target(parse_reference("quay.io/calicoctl/x:v1")).repository == "quay/calicoctl/x"


def test_prefix_rule_on_docker_hub_matches_the_api_name() -> None:
    mapper = Mapper(Config(rules=(Rule("docker.io", "dockerhub"), Rule("docker.io/library", "official"))))
    assert mapper.target(parse_reference("nginx:1")).repository == "official/nginx"
    assert mapper.target(parse_reference("bitnami/nginx:1")).repository == "dockerhub/bitnami/nginx"


def test_prefix_only_rules_refuse_other_paths_of_the_same_host() -> None:
    mapper = Mapper(Config(rules=(Rule("quay.io/calico", "calico"),)))
    with pytest.raises(MappingError, match=r"rules for quay\.io cover only quay\.io/calico"):
        mapper.target(parse_reference("quay.io/coreos/flannel:v1"))


def test_target_registry_and_prefix_from_config() -> None:
    config = parse_config({"target": {"registry": "registry.example.com:5000", "prefix": "/mirror/"}})
    target = Mapper(config).target(parse_reference("nginx:1"))
    assert str(target) == "registry.example.com:5000/mirror/dockerhub/nginx:1"
    assert target.name == "registry.example.com:5000/mirror/dockerhub/nginx"


def test_deny_list_patterns() -> None:
    config = Config(deny=(DenyEntry("docker.io/acme/*", "licence forbids it"), DenyEntry("quay.io/x/y:bad*")))
    mapper = Mapper(config)
    with pytest.raises(MappingError, match=r"deny list.*licence forbids it"):
        mapper.target(parse_reference("acme/tool:1"))
    with pytest.raises(MappingError, match="deny list"):
        mapper.target(parse_reference("quay.io/x/y:bad-1"))
    assert mapper.target(parse_reference("quay.io/x/y:good")).repository == "quay/x/y"


@pytest.mark.parametrize(
    ("target", "source"),
    [
        (f"{ECR}/dockerhub/nginx:1.17.9", "nginx:1.17.9"),
        ("dockerhub/library/nginx:1", "library/nginx:1"),
        (f"{ECR}/gcr/heptio-images/velero:v1.1.0", "gcr.io/heptio-images/velero:v1.1.0"),
        (f"{ECR}/gcr/google_containers/pause:3.9", "registry.k8s.io/pause:3.9"),
        (f"{ECR}/quay/calico/node:v3.7.4", "quay.io/calico/node:v3.7.4"),
        (
            f"{ECR}/amazonecr/amazon-k8s-cni:v1.5.5",
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.5.5",
        ),
    ],
)
def test_reverse_mapping(mapper: Mapper, target: str, source: str) -> None:
    assert str(mapper.source(target)) == source


def test_reverse_refuses_foreign_paths(mapper: Mapper) -> None:
    with pytest.raises(MappingError, match="not in the mirror registry"):
        mapper.source("quay.io/calico/node:v1")
    with pytest.raises(MappingError, match="no mirror rule produces"):
        mapper.source(f"{ECR}/elsewhere/app:1")


def test_forward_then_reverse_round_trips_for_canonical_sources(mapper: Mapper) -> None:
    for text in ["nginx:1", "bitnami/redis:7", "quay.io/a/b:c", "registry.k8s.io/pause:3.9", "ghcr.io/o/r:1"]:
        ref = parse_reference(text)
        assert mapper.source(str(mapper.target(ref))) == ref


def test_is_target(mapper: Mapper) -> None:
    assert mapper.is_target(parse_reference(f"{ECR}/dockerhub/nginx:1"))
    assert not mapper.is_target(parse_reference("nginx:1"))
