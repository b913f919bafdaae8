//! The simulation suite and its runner (issue 5): `just sim --seed N`, seed swarms and one
//! checker per concern (durability, order, no phantom data, liveness). Empty for now.
