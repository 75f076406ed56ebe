"""The build engine every method runs on: the config every method's extends (`config`), the contract a
method fulfils (`method`), the run over a source (`engine`), rows, progress, class balance, and the
chain-of-thought reading later methods share (`reasoning`). The methods themselves live in
`toolkit.methods`, one package each, named in its registry.
"""
