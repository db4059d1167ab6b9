"""policy: the meal and pass policy as data, per region or school, with effective dates."""
