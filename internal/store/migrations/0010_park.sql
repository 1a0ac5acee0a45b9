-- Park orbits across the cluster (docs/decisions.md, "Park"). A call
-- waiting in an orbit holds its row: the primary key gives each orbit of
-- an account to one call on one node, whichever node allocates it, and a
-- pickup on any node finds there the node to send it to. The row goes when
-- the call leaves the orbit; the rows of a node that died go when it is
-- reaped (or are taken over by the next call parked there).
CREATE TABLE park_orbits (
    account   TEXT NOT NULL,
    orbit     INTEGER NOT NULL,
    node      TEXT NOT NULL,
    call_id   TEXT NOT NULL,
    parked_us BIGINT NOT NULL,
    PRIMARY KEY (account, orbit)
);
CREATE INDEX park_orbits_node ON park_orbits (node);
