"""The code behind the scripts in `experiments/`: what the toy tables share (`toy`) and the thesis launchers
(`thesis`)."""
