// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Append-only store for GridSync ledger records. The contract enforces the hash chain itself:
/// each record's hash must be the SHA-256 of its canonical JSON body, and each record must link
/// to the current head. Ed25519 signatures are stored as given (the EVM has no cheap Ed25519)
/// and checked off-chain by `gridsync ledger verify`.
contract LedgerAnchor {
    address public immutable owner;
    bytes32 public head;
    uint256 public count;

    event Record(uint256 indexed index, bytes32 hash, bytes32 prev, string body, bytes sig);

    constructor() {
        owner = msg.sender;
    }

    function append(bytes32[] calldata hashes, string[] calldata bodies, bytes[] calldata sigs) external {
        require(msg.sender == owner, "only the ledger operator appends");
        require(hashes.length == bodies.length && hashes.length == sigs.length, "length mismatch");
        bytes32 prev = head;
        uint256 n = count;
        for (uint256 k = 0; k < hashes.length; k++) {
            require(sha256(bytes(bodies[k])) == hashes[k], "hash does not match body");
            emit Record(n + k, hashes[k], prev, bodies[k], sigs[k]);
            prev = hashes[k];
        }
        head = prev;
        count = n + hashes.length;
    }
}
