from syncbus_health_monitor.settings import HealthSettings


def test_the_probe_interval_never_goes_below_15_minutes_without_the_named_override():
    assert HealthSettings().effective_interval(60) == 900
    assert HealthSettings().effective_interval(3600) == 3600


def test_the_named_development_override_lowers_the_floor():
    assert HealthSettings(dev_min_interval_seconds=5).effective_interval(5) == 5
